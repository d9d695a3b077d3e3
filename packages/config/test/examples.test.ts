import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Config, drainDelayMs, loadConfigFile, sessionCookieSecure } from '../src/index.ts';

/** Every file in the repository's examples/ must load; a few defaults and units are spot-checked. */
const examples = join(import.meta.dirname, '..', '..', '..', 'examples');
const load = (name: string): Promise<Config> => loadConfigFile(join(examples, name));

describe('examples/', () => {
  const files = readdirSync(examples).filter((f) => f.endsWith('.yaml'));

  it('holds the four documented examples', () => {
    expect(files).toEqual(expect.arrayContaining(['classic-lvs-dr.yaml', 'local-stack.yaml', 'nat-and-tun.yaml', 'hash-and-sticky.yaml']));
  });

  it.each(files)('%s validates', async (name) => {
    const cfg = await load(name);
    expect(cfg.version).toBe(1);
  });

  it('classic-lvs-dr: the tutorial topology with normalised units and keepalived/nginx defaults', async () => {
    const cfg = await load('classic-lvs-dr.yaml');
    const [http, https] = cfg.virtual_services;
    expect(http).toMatchObject({ address: '192.168.10.100', port: 80, protocol: 'tcp', scheduler: 'wlc', forwarding: 'dr' });
    expect(http?.real_servers.map((r) => [r.address, r.port, r.weight])).toEqual([
      ['192.168.10.11', undefined, 1],
      ['192.168.10.12', undefined, 1],
    ]);
    // The director checks the path each proxy answers itself, so a leaving proxy is quiesced before it closes.
    expect(http?.health_check).toMatchObject({
      type: 'http',
      path: '/-/tiergate/health',
      interval: 2_000,
      timeout: 1_000,
      fall: 2,
      rise: 1,
    });
    expect(https?.health_check).toMatchObject({ type: 'https', path: '/-/tiergate/health' });
    expect(cfg.proxy?.monitor_uri).toBe('/-/tiergate/health');
    expect(drainDelayMs(cfg)).toBe(6_400);
    expect(http?.drain_timeout).toBe(300_000);
    expect(https?.persistence).toEqual({ timeout: 300_000 });
    expect(cfg.directors[0]?.admin).toEqual({ address: '127.0.0.1', port: 9902 });
    expect(cfg.directors[0]?.timeouts).toEqual({ tcp: 900_000, tcp_fin: 120_000, udp: 300_000 });
    const proxy = cfg.proxy!;
    // LVS-DR: the proxy's peers are the clients, so it trusts no one's X-Forwarded-For; the apps trust the proxy nodes.
    expect(proxy.trusted_proxies).toEqual([]);
    expect(cfg.apps?.trusted_proxies).toEqual(['192.168.10.11', '192.168.10.12']);
    expect(proxy.limits).toMatchObject({ max_body_size: 1024 ** 2, max_header_size: 16 * 1024, keepalive_timeout: 75_000 });
    const app = proxy.pools.app!;
    expect(app.servers.map((s) => [s.address, s.weight, s.fail_timeout])).toEqual([
      ['192.168.10.21:8080', 3, 30_000],
      ['192.168.10.22:8080', 1, 30_000],
    ]);
    expect(app.timeouts).toEqual({ connect: 5_000, response_headers: 60_000, idle: 60_000, send: 60_000 });
    expect(cfg.sessions?.redis).toMatchObject({ mode: 'standalone', url: 'redis://192.168.10.30:6379', db: 0 });
    expect(cfg.sessions?.ttl).toBe(30 * 60_000);
    expect(cfg.telemetry.tracing).toMatchObject({ enabled: true, endpoint: 'http://192.168.10.40:4318' });
  });

  it('local-stack: loopback only, no IPVS, defaults filled in', async () => {
    const cfg = await load('local-stack.yaml');
    expect(cfg.virtual_services).toEqual([]);
    expect(cfg.directors).toEqual([]);
    const proxy = cfg.proxy!;
    expect(proxy.listeners).toEqual([{ address: '127.0.0.1', port: 8080, http1_server: 'lean' }]);
    expect(proxy.admin).toEqual({ address: '127.0.0.1', port: 9901 });
    expect(proxy.trusted_proxies).toEqual(['127.0.0.0/8', '::1']);
    expect(cfg.apps?.trusted_proxies).toEqual(['127.0.0.1']);
    expect(proxy.routes).toEqual([]);
    expect(proxy.workers).toBe(1);
    const app = proxy.pools.app!;
    expect(app.algorithm).toBe('round_robin');
    expect(app.servers.map((s) => s.address)).toEqual(['127.0.0.1:8081', '127.0.0.1:8082']);
    expect(app.servers[0]).toMatchObject({ weight: 1, max_fails: 1, fail_timeout: 10_000, backup: false, down: false, max_conns: 0 });
    expect(app.health_check).toMatchObject({ type: 'http', path: '/healthz', interval: 2_000, timeout: 1_000, expect_status: ['200-399'] });
    expect(app.keepalive).toEqual({ connections: 32, timeout: 60_000, max_connections: 0 });
    expect(app.retries).toEqual({ tries: 0, timeout: 0, on: ['error', 'timeout'] });
    expect(cfg.sessions?.redis.url).toBe('redis://127.0.0.1:6399');
    expect(cfg.sessions).toMatchObject({ store: 'redis', key_prefix: 'tg:sess:', max_size: 64 * 1024, rolling: true });
    // `secure` unset: decided by the listeners (sessionCookieSecure), here plain HTTP on loopback, so off.
    expect(cfg.sessions?.cookie).toEqual({ name: 'tg.sid', http_only: true, same_site: 'lax', path: '/' });
    expect(sessionCookieSecure(cfg)).toBe(false);
    expect(cfg.telemetry.tracing.enabled).toBe(false);
  });

  it('nat-and-tun: port mapping, GUE, fwmark and IPv6 services', async () => {
    const cfg = await load('nat-and-tun.yaml');
    const byName = new Map(cfg.virtual_services.map((v) => [v.name, v]));
    expect(byName.get('web-nat')?.real_servers.map((r) => r.port)).toEqual([8080, 8080]);
    expect(byName.get('tls-tun')?.tunnel).toEqual({ type: 'gue', port: 6080, checksum: 'nocsum' });
    const fwmark = byName.get('web-fwmark');
    expect(fwmark).toMatchObject({ fwmark: 1, family: 'inet', persistence: { timeout: 600_000, netmask: '255.255.255.0' } });
    expect(fwmark).not.toHaveProperty('address');
    expect(fwmark).not.toHaveProperty('port');
    expect(byName.get('web-v6')?.persistence).toEqual({ timeout: 300_000, netmask: 64 });
    expect(byName.get('dns')).toMatchObject({ protocol: 'udp', one_packet: true });
  });

  it('hash-and-sticky: hashing, stickiness, routes and header operations', async () => {
    const cfg = await load('hash-and-sticky.yaml');
    const proxy = cfg.proxy!;
    expect(proxy.listeners).toEqual([{ address: '0.0.0.0', port: 8080, http1_server: 'lean' }]);
    expect(proxy.pools.cache).toMatchObject({ algorithm: 'hash', hash_key: '$request_uri', consistent: true });
    expect(proxy.pools.legacy?.algorithm).toBe('ip_hash');
    expect(proxy.pools.web?.sticky).toMatchObject({ cookie: 'srv_id', max_age: 3_600_000, http_only: true });
    expect(proxy.pools.api?.servers[0]?.slow_start).toBe(30_000);
    expect(proxy.routes.map((r) => [r.host, r.path, r.pool])).toEqual([
      ['static.example.com', '/', 'cache'],
      [undefined, '/legacy/', 'legacy'],
      ['*.api.example.com', '/v1/', 'api'],
      [undefined, '/', 'web'],
    ]);
    expect(proxy.routes[2]?.max_body_size).toBe(8 * 1024 ** 2);
    expect(proxy.routes[2]?.headers).toEqual({ add: {}, set: { 'X-Api-Version': '1' }, remove: ['Cookie'] });
  });

  it('returns a deeply frozen config: mutation throws (ES modules are strict mode)', async () => {
    const cfg = await load('classic-lvs-dr.yaml');
    const mutable = cfg as unknown as {
      version: number;
      virtual_services: { real_servers: { weight: number }[] }[];
      proxy: { pools: Record<string, { servers: unknown[] }>; trusted_proxies: string[] };
    };
    expect(() => {
      mutable.version = 2;
    }).toThrow(TypeError);
    expect(() => {
      mutable.virtual_services[0]!.real_servers[0]!.weight = 0;
    }).toThrow(TypeError);
    expect(() => mutable.proxy.pools.app!.servers.push({})).toThrow(TypeError);
    expect(() => mutable.proxy.trusted_proxies.push('0.0.0.0/0')).toThrow(TypeError);
    expect(Object.isFrozen(cfg.telemetry.tracing.resource_attributes)).toBe(true);
  });
});

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  admin,
  type ConfigDir,
  configDir,
  metricSum,
  type ProxyProc,
  proxyYaml,
  runCli,
  startLoad,
  startProxyProc,
  startUpstream,
  type Upstream,
  until,
} from './proxy-ops-helpers.ts';

/**
 * `tiergate proxy` with `workers: 2` as real processes on loopback: one proxy for the whole file (a
 * cluster takes a second or two to start), tests in order, the SIGTERM drain last.
 */
const TOKEN = 's3cret';
const routes = '  routes: [{ path: /app, pool: app }]\n';
const yaml = (servers: string[], extra = '') => proxyYaml({ workers: 2, servers, token: TOKEN, accessLog: true, extra: routes + extra });

describe('tiergate proxy, workers: 2', () => {
  let a: Upstream;
  let b: Upstream;
  let cfg: ConfigDir;
  let p: ProxyProc;

  beforeAll(async () => {
    a = await startUpstream('A', 5);
    b = await startUpstream('B', 5);
    cfg = configDir(yaml([a.address]));
    p = await startProxyProc(cfg.file);
  });
  afterAll(async () => {
    await p?.[Symbol.asyncDispose]();
    await a?.[Symbol.asyncDispose]();
    await b?.[Symbol.asyncDispose]();
    cfg?.[Symbol.dispose]();
  });

  const status = async () => JSON.parse((await admin(p.admin, '/status', TOKEN)).body);

  it('the admin endpoint needs the bearer token; healthz and readyz answer with it', async () => {
    const denied = await admin(p.admin, '/status');
    expect(denied.status).toBe(401);
    expect(JSON.parse(denied.body).error.code).toBe('TG_ADMIN_UNAUTHORIZED');
    expect((await admin(p.admin, '/metrics', 'wrong')).status).toBe(401);
    expect(await admin(p.admin, '/healthz', TOKEN)).toEqual({ status: 200, body: 'ok\n' });
    const ready = await admin(p.admin, '/readyz', TOKEN);
    expect([ready.status, JSON.parse(ready.body)]).toEqual([200, { ready: true, reasons: [] }]);
  });

  it('/metrics aggregates both workers: counts match the requests sent', async () => {
    const before = (await admin(p.admin, '/metrics', TOKEN)).body;
    const ok = startLoad(p.url, { concurrency: 4, maxRequests: 40, maxMs: 15_000, path: '/app', fresh: true, prefix: 'm' });
    const miss = startLoad(p.url, { concurrency: 2, maxRequests: 10, maxMs: 15_000, path: '/nothing', fresh: true, prefix: 'n' });
    const [r, m] = await Promise.all([ok.done, miss.done]);
    expect([r.ok, r.errors, m.statuses]).toEqual([40, [], { 404: 10 }]);
    const after = (await admin(p.admin, '/metrics', TOKEN)).body;
    const delta = (name: string, labels: Record<string, string>) => metricSum(after, name, labels) - metricSum(before, name, labels);
    expect(delta('tiergate_proxy_requests_total', { pool: 'app', code: '2xx' })).toBe(40);
    expect(delta('tiergate_proxy_requests_total', { pool: '-', code: '4xx' })).toBe(10);
    expect(delta('tiergate_proxy_errors_total', { code: 'TG_PROXY_NO_ROUTE' })).toBe(10);
    expect(delta('tiergate_proxy_upstream_attempts_total', { upstream: a.address, result: 'ok' })).toBe(40);
    expect(delta('tiergate_proxy_upstream_duration_seconds_count', { upstream: a.address })).toBe(40);
    expect(delta('tiergate_proxy_client_connections_accepted_total', {})).toBe(50);
    expect(metricSum(after, 'tiergate_proxy_workers')).toBe(2);
    // Per-process default metrics: one series per worker (and the primary's), not summed together.
    for (const worker of ['1', '2', 'primary']) expect(metricSum(after, 'process_resident_memory_bytes', { worker })).toBeGreaterThan(1e6);
    expect(metricSum(after, 'tiergate_build_info')).toBe(1);
  });

  it('/status and `tiergate proxy status` show both workers and the server with its counts', async () => {
    const s = await status();
    expect(s.workers.map((w: { worker: string }) => w.worker).sort()).toEqual(['1', '2']);
    const server = s.pools[0].servers[0];
    expect(server).toMatchObject({ address: a.address, state: 'up', health: 'unchecked', failures: 0, active: 0 });
    expect(server.requests).toBeGreaterThanOrEqual(40);
    expect(server.latencyMs.samples).toBeGreaterThanOrEqual(40);
    expect(server.latencyMs.p50).toBeGreaterThan(0);
    const cli = await runCli(['proxy', 'status', '-c', cfg.file, '--admin', p.admin]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('ready: yes');
    expect(cli.stdout).toContain('pool app (weighted)');
    expect(cli.stdout).toMatch(new RegExp(`${a.address.replace(/\./g, '\\.')}\\s+up\\s+unchecked\\s+0\\s+${server.requests}\\s+0\\s`));
    expect(cli.stdout.split('\n').filter((l) => /^[12]\s+\d+\s+\d+s\s+\d+ MiB/.test(l))).toHaveLength(2);
  });

  it('reloads under load (SIGHUP, then `tiergate proxy reload`) without a failed request', async () => {
    const load = startLoad(p.url, { concurrency: 8, maxRequests: 4000, maxMs: 20_000, path: '/app', prefix: 'r' });
    await until(() => load.result.ok > 100, 10_000, 'load to start');
    cfg.write(yaml([a.address, b.address]));
    p.child.kill('SIGHUP');
    await until(() => b.seen.size > 20, 10_000, 'B to take traffic after SIGHUP');
    cfg.write(yaml([b.address]));
    const cli = await runCli(['proxy', 'reload', '-c', cfg.file, '--admin', p.admin]);
    expect([cli.code, cli.stdout, cli.stderr]).toEqual([0, 'reloaded\n', '']);
    const aSeen = a.seen.size;
    await until(() => load.result.ok > 800, 15_000, 'more load');
    load.stop();
    const r = await load.done;
    expect([r.errors, r.statuses, r.sawClose]).toEqual([[], {}, 0]);
    expect(r.ok).toBe(r.sent);
    // After the second reload A gets nothing new (a request or two may have been on their way).
    expect(a.seen.size - aSeen).toBeLessThanOrEqual(8);
  });

  it('an invalid file or a listener change is rejected and the running config stays', async () => {
    const good = readFileSync(cfg.file, 'utf8');
    cfg.write(good.replace(b.address, 'not-an-address'));
    p.child.kill('SIGHUP');
    await until(() => /reload rejected; the running config stays/.test(p.stderr()), 10_000, 'the rejection in the log');
    expect(p.stderr()).toContain('TG_CONFIG_INVALID');
    const post = await admin(p.admin, '/reload', TOKEN, 'POST');
    expect([post.status, JSON.parse(post.body).error.code]).toEqual([500, 'TG_CONFIG_INVALID']);
    const cli = await runCli(['proxy', 'reload', '-c', cfg.file, '--admin', p.admin]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('[TG_CONFIG_INVALID]');
    cfg.write(good.replace('port: 0 }]', 'port: 1 }]'));
    const moved = await admin(p.admin, '/reload', TOKEN, 'POST');
    expect([moved.status, JSON.parse(moved.body).error.code]).toEqual([409, 'TG_PROXY_RELOAD_REJECTED']);
    cfg.write(good);
    const r = await startLoad(p.url, { concurrency: 2, maxRequests: 20, maxMs: 10_000, path: '/app', fresh: true, prefix: 'i' }).done;
    expect([r.ok, r.errors]).toEqual([20, []]);
    expect(metricSum((await admin(p.admin, '/metrics', TOKEN)).body, 'tiergate_proxy_reloads_total', { result: 'error' })).toBe(3);
  });

  it('a killed worker is replaced and the listener never refuses a connection', async () => {
    const pids: number[] = (await status()).workers.map((w: { pid: number }) => w.pid);
    const load = startLoad(p.url, { concurrency: 4, maxRequests: 20_000, maxMs: 20_000, path: '/app', fresh: true, prefix: 'k' });
    await until(() => load.result.ok > 50, 10_000, 'load to start');
    process.kill(pids[0]!, 'SIGKILL');
    const okAtKill = load.result.ok;
    await until(
      async () => {
        const now: number[] = (await status()).workers.map((w: { pid: number }) => w.pid);
        return now.length === 2 && !now.includes(pids[0]!);
      },
      15_000,
      'a replacement worker',
    );
    await until(() => load.result.ok > okAtKill + 200, 10_000, 'load after the replacement');
    load.stop();
    const r = await load.done;
    expect(r.errors.filter((e) => e.code === 'ECONNREFUSED')).toEqual([]);
    // Only requests in flight on the killed worker can fail: at most one per connection.
    expect(r.errors.length).toBeLessThanOrEqual(4);
    expect(r.statuses).toEqual({});
    expect(metricSum((await admin(p.admin, '/metrics', TOKEN)).body, 'tiergate_proxy_worker_restarts_total')).toBe(1);
  });

  it('SIGTERM drains under load: no request in flight fails, exit 0; the access log has every request', async () => {
    const slow = await startUpstream('S', 40);
    try {
      cfg.write(yaml([slow.address]));
      p.child.kill('SIGHUP');
      await until(async () => (await status()).pools[0].servers[0].address === slow.address, 10_000, 'reload to the slow upstream');
      const load = startLoad(p.url, { concurrency: 8, maxRequests: 5000, maxMs: 20_000, path: '/app', prefix: 'd' });
      await until(() => load.result.ok > 50, 10_000, 'load to start');
      p.child.kill('SIGTERM');
      const r = await load.done;
      expect(await p.exited).toBe(0);
      // A request the upstream saw was in flight: it must have completed with 200.
      expect(r.errors.filter((e) => slow.seen.has(e.seq))).toEqual([]);
      expect(r.statuses).toEqual({});
      expect(r.sawClose + r.errors.length).toBe(8);
      // Every client connection saw `Connection: close` and none failed: the drain's grace serves requests
      // written on keep-alive connections instead of closing them as idle under the client.
      expect(r.errors).toEqual([]);
      expect(r.sawClose).toBe(8);
      const lines = p
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'));
      const records = lines.map((l) => JSON.parse(l));
      const byId = new Map(records.map((x) => [x.request_id, x]));
      expect([...byId.keys()].filter((id) => /^m\d+-\d+$/.test(id))).toHaveLength(40);
      const one = records.find((x) => /^m\d+-\d+$/.test(x.request_id));
      expect(one).toMatchObject({
        method: 'GET',
        path: '/app',
        status: 200,
        bytes: 1,
        upstream: a.address,
        attempts: 1,
        client: '127.0.0.1',
      });
      expect(one.duration_ms).toBeGreaterThanOrEqual(one.upstream_ms);
      expect(records.filter((x) => /^n\d+-\d+$/.test(x.request_id)).every((x) => x.status === 404 && x.error === 'TG_PROXY_NO_ROUTE')).toBe(
        true,
      );
      expect(records.filter((x) => /^d\d+-\d+$/.test(x.request_id) && x.status === 200)).toHaveLength(r.ok);
    } finally {
      await slow[Symbol.asyncDispose]();
    }
  });
});

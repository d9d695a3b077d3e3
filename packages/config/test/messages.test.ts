import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { type ConfigIssue, parseConfig, validateConfig } from '../src/index.ts';

/** Runs `fn`, which must throw a TgError; returns its code, message and issues. */
function failure(fn: () => unknown): { code: string; message: string; issues: ConfigIssue[] } {
  try {
    fn();
  } catch (err) {
    if (!isTgError(err)) throw err;
    return { code: err.code, message: err.message, issues: (err.details as { issues: ConfigIssue[] }).issues };
  }
  throw new Error('accepted');
}

const POOL = 'proxy:\n  listeners: [{ port: 8080 }]\n  pools:\n    app:\n      servers: [{ address: 127.0.0.1:8081 }]\n';

describe('error reporting', () => {
  it('formats each issue as file:line:column: path: message, all in one error', () => {
    const text = 'version: 1\nvirtual_services:\n  - address: 10.0.0.1\n    port: 80\n    scheduler: fast\n    bogus: 1\n';
    const { code, message, issues } = failure(() => parseConfig(text, 'tg.yaml'));
    expect(code).toBe('TG_CONFIG_INVALID');
    expect(issues).toEqual([
      {
        file: 'tg.yaml',
        line: 5,
        column: 16,
        path: 'virtual_services[0].scheduler',
        message: expect.stringContaining('"fast" is not allowed: expected one of "rr"'),
      },
      { file: 'tg.yaml', line: 6, column: 5, path: 'virtual_services[0].bogus', message: "unknown key 'bogus'" },
    ]);
    expect(message).toContain('tg.yaml is invalid (2 problems):');
    expect(message).toContain("tg.yaml:6:5: virtual_services[0].bogus: unknown key 'bogus'");
  });

  it('reports every shape problem at once, at several depths', () => {
    const text = `version: 1\ncolour: 1\n${POOL}          weight: 0\ntelemetry:\n  tracing: { enabled: maybe }\n`.replace(
      'servers: [{ address: 127.0.0.1:8081 }]\n',
      'servers:\n        - address: 127.0.0.1:8081\n',
    );
    const { issues } = failure(() => parseConfig(text, 'x.yaml'));
    expect(issues.map((i) => i.path)).toEqual(['colour', 'proxy.pools.app.servers[0].weight', 'telemetry.tracing.enabled']);
  });

  it('says "required" for a missing key and names the missing discriminator', () => {
    expect(failure(() => parseConfig('', 'e.yaml')).issues).toEqual([
      { file: 'e.yaml', line: 1, column: 1, path: 'version', message: 'required: expected 1' },
    ]);
    const hc = POOL.replace('servers:', 'health_check: { interval: 5s }\n      servers:');
    const issue = failure(() => parseConfig(`version: 1\n${hc}`)).issues[0];
    expect(issue).toMatchObject({ path: 'proxy.pools.app.health_check.type', message: 'required' });
    const unknown = failure(() => parseConfig(`version: 1\n${hc.replace('{ interval', '{ type: snmp, interval')}`)).issues[0];
    expect(unknown?.message).toBe('unknown type "snmp"');
    const rs = failure(() => parseConfig('version: 1\nvirtual_services:\n  - { address: 10.0.0.1, port: 80, real_servers: [{}] }\n'));
    expect(rs.issues[0]).toMatchObject({ path: 'virtual_services[0].real_servers[0].address', message: 'required' });
  });

  it('describes a document that is not a mapping by its type (not as "required")', () => {
    expect(failure(() => parseConfig('just text\n')).issues[0]?.message).toBe('Invalid input: expected object, received string');
    expect(failure(() => parseConfig('- 1\n')).issues[0]?.message).toBe('Invalid input: expected object, received array');
  });

  it('reports a bad pool name at its key with the reason', () => {
    const issue = failure(() => parseConfig(`version: 1\n${POOL.replace('app:', 'a/b:')}`)).issues[0];
    expect(issue).toMatchObject({ line: 5, column: 5, path: 'proxy.pools.a/b', message: 'invalid key: letters, digits, _ . - only' });
  });

  it('reports YAML errors as TG_CONFIG_PARSE with their line', () => {
    const { code, issues, message } = failure(() => parseConfig('version: 1\nproxy: [\n', 'y.yaml'));
    expect(code).toBe('TG_CONFIG_PARSE');
    expect(issues[0]).toMatchObject({ file: 'y.yaml', path: '' });
    expect(message).toContain('y.yaml is not valid YAML');
  });

  it('validateConfig checks in-memory objects with the same schema and rules', () => {
    const cfg = validateConfig({
      version: 1,
      virtual_services: [{ address: '10.0.0.1', port: 80, real_servers: [{ address: '10.0.0.2' }] }],
    });
    expect(cfg.virtual_services[0]?.scheduler).toBe('wlc');
    const { code, issues } = failure(() =>
      validateConfig({
        version: 1,
        virtual_services: [{ address: '10.0.0.1', port: 80, real_servers: [{ address: '10.0.0.2', port: 81 }] }],
      }),
    );
    expect(code).toBe('TG_CONFIG_INVALID');
    expect(issues.map((i) => i.path)).toEqual(['virtual_services[0].real_servers[0].port']);
  });
});

describe('rules fixed alongside the corpus', () => {
  it('a wildcard listener collides with any address on its port, and the admin default too', () => {
    const text =
      'version: 1\nproxy:\n  listeners: [{ port: 9901 }, { address: "::", port: 8080 }, { address: 127.0.0.1, port: 8080 }]\n  pools: { a: { servers: [{ address: "x:1" }] } }\n';
    expect(failure(() => parseConfig(text)).issues.map((i) => i.path)).toEqual(['proxy.admin.port', 'proxy.listeners[2].port']);
    const separate = text.replace('port: 9901', 'port: 80').replace('address: 127.0.0.1, port: 8080', 'address: 127.0.0.1, port: 8081');
    expect(parseConfig(separate).proxy?.listeners).toHaveLength(3);
  });

  it('port 0 listeners (ephemeral, tests) never collide', () => {
    const text =
      'version: 1\nproxy:\n  listeners: [{ port: 0 }, { port: 0 }]\n  admin: { port: 0 }\n  pools: { a: { servers: [{ address: "x:1" }] } }\n';
    expect(parseConfig(text).proxy?.listeners).toHaveLength(2);
  });

  it('refuses a port in a route host, pointing to the listeners (nginx server_name takes none)', () => {
    const route = (host: string) => `version: 1\n${POOL}  routes: [{ host: "${host}", pool: app }]\n`;
    expect(failure(() => parseConfig(route('api.example.com:8080'))).issues).toEqual([
      expect.objectContaining({
        path: 'proxy.routes[0].host',
        message: 'a route host takes no port: routes serve every listener (as nginx server_name); ports are proxy.listeners[].port',
      }),
    ]);
    expect(failure(() => parseConfig(route('*.example.com:'))).issues[0]?.message).toContain('takes no port');
    expect(failure(() => parseConfig(route('api_example.com'))).issues[0]?.message).toBe('expected a host name or *.suffix');
    expect(parseConfig(route('*.Example.com')).proxy?.routes[0]?.host).toBe('*.Example.com');
  });

  it('finds duplicate routes however the host is spelled (case, a trailing dot), as the proxy would match them', () => {
    const routes = `version: 1\n${POOL}  routes:\n    - { host: "A.example.com", path: /x, pool: app }\n    - { host: "a.example.com.", path: /x, pool: app }\n`;
    expect(failure(() => parseConfig(routes)).issues).toEqual([
      expect.objectContaining({ path: 'proxy.routes[1].path', message: 'duplicate route a.example.com /x (routes[0])' }),
    ]);
  });

  it('finds duplicate IPv6 real servers however they are spelled', () => {
    const text =
      "version: 1\nvirtual_services:\n  - address: '2001:db8::1'\n    port: 80\n    real_servers: [{ address: '2001:db8::a' }, { address: '2001:DB8:0::A' }]\n";
    expect(failure(() => parseConfig(text)).issues.map((i) => i.path)).toEqual(['virtual_services[0].real_servers[1].address']);
  });
});

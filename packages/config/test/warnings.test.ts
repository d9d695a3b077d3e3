import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type ConfigIssue, formatWarning, KNOWN_DEMO_SECRETS, parseConfig, parseConfigWithWarnings } from '../src/index.ts';

/** The warnings of a YAML text, as `path: message` (positions are checked in their own test). */
function warnings(text: string): ConfigIssue[] {
  return [...parseConfigWithWarnings(text, 't.yaml').warnings];
}
const paths = (text: string) => warnings(text).map((w) => w.path);

const RANDOM = 'Qm9vdHN0cmFwLXJhbmRvbS0xMjM0NTY3ODkw';
const proxyOn = (address: string, extra = '') => `
proxy:
  listeners: [{ address: ${address}, port: 8080 }]
  admin: { address: 127.0.0.1, port: 9901 }
  pools: { app: { servers: [{ address: "127.0.0.1:8081" }] } }
${extra}`;
// secure: false so that the plain-HTTP listener's Secure-cookie warning (tested below) stays out of these.
const sessionsWith = (secret: string, extra = '') => `
sessions:
  cookie: { secure: false }
  secrets: [${JSON.stringify(secret)}]
${extra}`;

describe('warnings: placeholder and published secrets', () => {
  it('a placeholder session secret is reported, even on loopback', () => {
    for (const placeholder of ['CHANGE_ME-32-random-bytes-base64', 'replace-me-with-32-random-bytes-base64', 'a-Placeholder-secret-value'])
      expect(paths(`version: 1\n${proxyOn('127.0.0.1')}${sessionsWith(placeholder)}`), placeholder).toEqual(['sessions.secrets[0]']);
  });

  it('a published demo secret is reported when the file listens beyond loopback, not on loopback only', () => {
    const demo = 'local-stack-dev-secret-0001';
    const out = warnings(`version: 1\n${proxyOn('0.0.0.0')}${sessionsWith(demo)}`);
    expect(out.map((w) => w.path)).toEqual(['sessions.secrets[0]']);
    expect(out[0]?.message).toMatch(/published demo secret .* forge session cookies/);
    expect(paths(`version: 1\n${proxyOn('127.0.0.1')}${sessionsWith(demo)}`)).toEqual([]);
    expect(paths(`version: 1\n${proxyOn('::1')}${sessionsWith(demo)}`)).toEqual([]);
  });

  it('a random secret is not reported', () => {
    expect(paths(`version: 1\n${proxyOn('0.0.0.0')}${sessionsWith(RANDOM)}`)).toEqual([]);
  });

  it('every secret field is checked: Redis password and URL, admin tokens, sticky secret', () => {
    const text = `version: 1
directors:
  - { name: lb1, interface: eth0, vips: [192.0.2.100], admin: { token: demo } }
proxy:
  listeners: [{ address: 0.0.0.0, port: 8080 }]
  admin: { address: 127.0.0.1, port: 9901, token: changeme }
  pools:
    app:
      servers: [{ address: "127.0.0.1:8081" }]
      sticky: { cookie: srv, secret: sticky-cookie-hmac-key-0123456789 }
sessions:
  redis:
    url: redis://:local-redis-password-0001@192.0.2.30:6379
    password: Secret
  cookie: { secure: false }
  secrets: [tiergate-demo-secret-not-for-production!]
`;
    expect(paths(text)).toEqual([
      'directors[0].admin.token',
      'proxy.admin.token',
      'proxy.pools.app.sticky.secret',
      'sessions.redis.url',
      'sessions.redis.password',
      'sessions.secrets[0]',
    ]);
  });

  it('a fwmark service makes a file non-local (it takes whatever address the firewall marks)', () => {
    const fwmark = 'virtual_services:\n  - { fwmark: 1, persistence: {}, real_servers: [{ address: 127.0.0.1 }] }\n';
    expect(paths(`version: 1\n${fwmark}${proxyOn('127.0.0.1')}${sessionsWith('local-stack-dev-secret-0001')}`)).toEqual([
      'sessions.secrets[0]',
    ]);
  });

  it('lists the secrets the loopback configurations publish (examples/local-stack.yaml, infra/inventories/local)', () => {
    const root = join(import.meta.dirname, '..', '..', '..');
    const local = parseConfig(readFileSync(join(root, 'examples', 'local-stack.yaml'), 'utf8'));
    const inventory = parse(readFileSync(join(root, 'infra', 'inventories', 'local', 'group_vars', 'all.yml'), 'utf8')) as Record<
      string,
      unknown
    >;
    const published = [...(local.sessions?.secrets ?? []), inventory.tiergate_session_secret, inventory.tiergate_redis_password];
    expect(published).toHaveLength(3);
    for (const s of published) expect(KNOWN_DEMO_SECRETS.has(s as string), String(s)).toBe(true);
    // Retired from examples/hash-and-sticky.yaml, but published all the same.
    expect(KNOWN_DEMO_SECRETS.has('sticky-cookie-hmac-key-0123456789')).toBe(true);
  });
});

describe('warnings: Secure cookies behind plain HTTP', () => {
  const listeners = (tls: boolean[]) =>
    tls.map((t, i) => `    - { address: 0.0.0.0, port: ${8080 + i}${t ? ', tls: { cert: /c.pem, key: /k.pem }' : ''} }`).join('\n');
  const file = (tls: boolean[], secure: boolean, stickySecure = false) => `version: 1
proxy:
  listeners:
${listeners(tls)}
  pools:
    app:
      servers: [{ address: "127.0.0.1:8081" }]
      sticky: { cookie: srv, secret: ${RANDOM}, secure: ${stickySecure} }
sessions:
  cookie: { secure: ${secure} }
  secrets: [${RANDOM}]
`;

  it('secure session cookies with a plain-HTTP listener: reported, naming the listener', () => {
    const out = warnings(file([true, false], true));
    expect(out.map((w) => w.path)).toEqual(['sessions.cookie.secure']);
    expect(out[0]?.message).toMatch(
      /^proxy\.listeners\[1\] \(0\.0\.0\.0:8081\) is plain HTTP, and browsers send a Secure cookie back over HTTPS only/,
    );
  });

  it('an unset session `secure` defaults to true beyond loopback: reported on sessions; not for a loopback-only stack', () => {
    const unset = (address: string) => file([false], false).replace('  cookie: { secure: false }\n', '').replace('0.0.0.0', address);
    const out = warnings(unset('0.0.0.0'));
    expect(out.map((w) => w.path)).toEqual(['sessions']);
    expect(out[0]?.message).toContain('sessions.cookie.secure is unset, so it defaults to true');
    expect(paths(unset('127.0.0.1'))).toEqual([]);
  });

  it('a secure sticky cookie with a plain-HTTP listener: reported', () => {
    expect(paths(file([false], false, true))).toEqual(['proxy.pools.app.sticky.secure']);
  });

  it('not reported when every listener is TLS, or the cookies are not Secure', () => {
    expect(paths(file([true, true], true, true))).toEqual([]);
    expect(paths(file([false], false))).toEqual([]);
  });
});

describe('warnings: trusted ranges wider than the proxies’ real peers', () => {
  const dr = (forwarding = 'dr', port = 80) => `version: 1
virtual_services:
  - address: 192.168.10.100
    port: ${port}
    forwarding: ${forwarding}
    real_servers: [{ address: 192.168.10.11${forwarding === 'nat' ? ', port: 80' : ''} }, { address: 192.168.10.12${forwarding === 'nat' ? ', port: 80' : ''} }]
`;
  const trust = (proxy: string[], apps?: string[]) => `
proxy:
  listeners: [{ address: 0.0.0.0, port: 80 }]
  trusted_proxies: ${JSON.stringify(proxy)}
  pools: { app: { servers: [{ address: "192.168.10.21:8080" }] } }
${apps ? `apps:\n  trusted_proxies: ${JSON.stringify(apps)}\n` : ''}`;

  it('the classic mistake: the proxies’ /24 trusted by the proxy and the apps', () => {
    const out = warnings(dr() + trust(['192.168.10.0/24'], ['192.168.10.0/24']));
    expect(out.map((w) => w.path)).toEqual(['proxy.trusted_proxies[0]', 'apps.trusted_proxies[0]']);
    expect(out[0]?.message).toMatch(
      /^192\.168\.10\.0\/24 contains the VIP 192\.168\.10\.100 \(virtual_services\[0\]\): IPVS \(DR\) hands the clients' own connections/,
    );
    expect(out[1]?.message).toMatch(/list the proxy nodes one by one \(192\.168\.10\.11, 192\.168\.10\.12\)$/);
  });

  it('a range holding only a proxy node (not the VIP) is reported too', () => {
    expect(warnings(dr() + trust(['192.168.10.8/29']))[0]?.message).toMatch(/contains the proxy node 192\.168\.10\.11/);
  });

  it('single hosts, and ranges away from the VIP and the proxy nodes (a CDN in front), are not reported', () => {
    expect(paths(dr() + trust(['203.0.113.0/24', '192.168.10.11'], ['192.168.10.11', '192.168.10.12/32']))).toEqual([]);
    expect(paths(dr() + trust([]))).toEqual([]);
  });

  it('only services that reach the proxy in DR count: not NAT, not a port no listener has', () => {
    expect(paths(dr('nat') + trust(['192.168.10.0/24']))).toEqual([]);
    expect(paths(dr('dr', 443) + trust(['192.168.10.0/24']))).toEqual([]);
  });

  it('IPv6 ranges are checked against IPv6 services', () => {
    const v6 = `version: 1
virtual_services:
  - { address: "2001:db8::100", port: 80, real_servers: [{ address: "2001:db8::11" }] }
`;
    expect(paths(v6 + trust(['2001:db8::/64', '192.168.0.0/16']))).toEqual(['proxy.trusted_proxies[0]']);
  });

  it('a range of every address is reported without any virtual service', () => {
    const out = warnings(`version: 1\n${trust(['0.0.0.0/0'], ['::/0'])}`);
    expect(out.map((w) => w.path)).toEqual(['proxy.trusted_proxies[0]', 'apps.trusted_proxies[0]']);
    expect(out[0]?.message).toMatch(/trusts every peer/);
  });
});

describe('warnings: a check that cannot see a proxy node leave', () => {
  const file = (check: string, monitor = '', listener = '{ address: 0.0.0.0, port: 80 }') => `version: 1
virtual_services:
  - address: 192.168.10.100
    port: 80
    real_servers: [{ address: 192.168.10.11 }, { address: 192.168.10.12 }]
    health_check: ${check}
proxy:
  listeners: [${listener}]
${monitor}  pools: { app: { servers: [{ address: "192.168.10.21:8080" }] } }
`;
  const MONITOR = '  monitor_uri: /-/tiergate/health\n';

  it('a tcp check of the proxy nodes, or an http check of another path, is reported with the fix', () => {
    const tcp = warnings(file('{ type: tcp }', MONITOR));
    expect(tcp.map((w) => w.path)).toEqual(['virtual_services[0].health_check.type']);
    expect(tcp[0]?.message).toMatch(/cannot see a proxy node leave: .*check it: `type: http, path: \/-\/tiergate\/health`/);
    expect(paths(file('{ type: http, path: /healthz }', MONITOR))).toEqual(['virtual_services[0].health_check.path']);
    const unset = warnings(file('{ type: http, path: /healthz }'));
    expect(unset[0]?.message).toMatch(/set proxy.monitor_uri and check it/);
  });

  it('an http(s) check of monitor_uri is not; nor a check that reaches no listener of this proxy', () => {
    expect(paths(file('{ type: http, path: /-/tiergate/health }', MONITOR))).toEqual([]);
    expect(paths(file('{ type: https, path: /-/tiergate/health }', MONITOR))).toEqual([]);
    expect(paths(file('{ type: tcp }', '', '{ address: 0.0.0.0, port: 8080 }'))).toEqual([]);
    expect(paths(file('{ type: tcp, port: 22 }'))).toEqual([]);
  });
});

describe('warnings: position and format', () => {
  it('each warning points at its value, printed as file:line:column: path: warning: message', () => {
    const text = `version: 1
proxy:
  listeners: [{ address: 0.0.0.0, port: 80 }]
  trusted_proxies: [10.0.0.1, 0.0.0.0/0]
  pools: { app: { servers: [{ address: "10.0.0.21:8080" }] } }
`;
    const [w] = warnings(text);
    expect(w).toMatchObject({ file: 't.yaml', line: 4, column: 31, path: 'proxy.trusted_proxies[1]' });
    expect(formatWarning(w!)).toMatch(/^t\.yaml:4:31: proxy\.trusted_proxies\[1\]: warning: 0\.0\.0\.0\/0 trusts every peer/);
  });
});

describe('warnings: the repository’s examples', () => {
  const examples = join(import.meta.dirname, '..', '..', '..', 'examples');
  const of = (name: string) => parseConfigWithWarnings(readFileSync(join(examples, name), 'utf8'), name).warnings.map((w) => w.path);

  it('the local stack (loopback only) and the L4-only example have none', () => {
    expect(of('local-stack.yaml')).toEqual([]);
    expect(of('nat-and-tun.yaml')).toEqual([]);
  });

  it('the deployable examples keep only their CHANGE_ME secrets, which strict mode refuses until replaced', () => {
    expect(of('classic-lvs-dr.yaml')).toEqual(['sessions.secrets[0]']);
    expect(of('hash-and-sticky.yaml')).toEqual(['proxy.pools.web.sticky.secret']);
  });
});

describe('warnings: a scheme redirect that can never proxy', () => {
  const file = (tls: boolean, trusted: string, scheme = 'https') => `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 8080${tls ? ', tls: { cert: /c.pem, key: /k.pem }' : ''} }]
  trusted_proxies: [${trusted}]
  routes: [{ path: /, pool: app, redirect: { scheme: ${scheme} } }]
  pools: { app: { servers: [{ address: "127.0.0.1:8081" }] } }
`;

  it('no listener serves the scheme and no trusted proxy can say so: reported on the route', () => {
    const out = warnings(file(false, ''));
    expect(out.map((w) => w.path)).toEqual(['proxy.routes[0].redirect.scheme']);
    expect(out[0]?.message).toContain('every request of this route is redirected, and never proxied to its pool');
    expect(paths(file(true, '', 'http'))).toEqual(['proxy.routes[0].redirect.scheme']);
  });

  it('not reported with a listener of that scheme, or a trusted TLS terminator in front', () => {
    expect(paths(file(true, ''))).toEqual([]);
    expect(paths(file(false, '10.0.0.5'))).toEqual([]);
  });
});

describe('warnings: a rewrite_prefix whose trailing slash does not match its path', () => {
  const file = (path: string, to: string) => `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 8080 }]
  routes: [{ path: ${path}, pool: app, rewrite_prefix: ${to} }]
  pools: { app: { servers: [{ address: "127.0.0.1:8081" }] } }
`;

  it('reported on the rewrite, with what a request becomes', () => {
    const out = warnings(file('/app', '/'));
    expect(out.map((w) => w.path)).toEqual(['proxy.routes[0].rewrite_prefix']);
    expect(out[0]?.message).toContain('/app/x is sent as //x');
    expect(warnings(file('/x/', '/y'))[0]?.message).toContain('/x/z is sent as /yz');
  });

  it('not reported when both end with / or neither does', () => {
    expect(paths(file('/api/', '/v1/'))).toEqual([]);
    expect(paths(file('/api', '/v1'))).toEqual([]);
  });
});

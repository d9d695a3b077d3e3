import { BlockList, isIP } from 'node:net';
import { isLoopbackAddress, parseCidr } from './address.ts';
import { checksProxyListener } from './drain-delay.ts';
import type { Config } from './load.ts';
import { sessionCookieSecure } from './session-cookie.ts';

type Path = (string | number)[];

/** A valid setting that is probably a mistake; `tiergate validate` prints it, `--strict` refuses the file. */
export interface ConfigWarning {
  readonly path: Path;
  readonly message: string;
}

/**
 * A value someone wrote to be replaced. Patterns of eight letters and more (`changeme`, `replaceme`,
 * `placeholder`), so a random secret does not match by chance.
 */
const PLACEHOLDER = /change[-_. ]?me|replace[-_. ]?me|placeholder/i;

/**
 * Secrets published in this repository (examples/, infra/ inventories, the demo app, tests) and the usual
 * guesses: whoever read them can use them. Keep this list in step when a new example secret is added anywhere.
 */
export const KNOWN_DEMO_SECRETS: ReadonlySet<string> = new Set([
  // packages/demo-app DEMO_SECRET
  'tiergate-demo-secret-not-for-production!',
  // examples/local-stack.yaml, infra/inventories/local
  'local-stack-dev-secret-0001',
  'local-redis-password-0001',
  // examples/hash-and-sticky.yaml before issue 17
  'sticky-cookie-hmac-key-0123456789',
  // test/proxy-ops-cluster.test.ts
  's3cret',
  // guesses (compared lower-cased)
  'secret',
  'password',
  'changeme',
  'demo',
  'test',
  'admin',
  'token',
  'letmein',
  '123456',
]);

/** Everything `tiergate validate` warns about in a valid config (docs/config-reference.md, "Warnings"). */
export function configWarnings(cfg: Config): ConfigWarning[] {
  return [
    ...secretWarnings(cfg),
    ...secureCookieWarnings(cfg),
    ...trustWarnings(cfg),
    ...leaveWarnings(cfg),
    ...redirectWarnings(cfg),
    ...rewriteWarnings(cfg),
  ];
}

// ---------------------------------------------------------------- prefix rewrites

/**
 * A `rewrite_prefix` that ends with `/` on a route whose `path` does not, or the other way round: the prefix is
 * replaced as a string (as nginx's `proxy_pass` with a URI does), so `path: /app` with `/` sends `/app/x` as `//x`
 * and `/apple` as `/le`, and `path: /x/` with `/y` sends `/x/z` as `/yz`.
 */
function rewriteWarnings(cfg: Config): ConfigWarning[] {
  const proxy = cfg.proxy;
  if (!proxy) return [];
  const warnings: ConfigWarning[] = [];
  proxy.routes.forEach((r, i) => {
    const to = r.rewrite_prefix;
    if (to === undefined || r.path.endsWith('/') === to.endsWith('/')) return;
    const sample = r.path.endsWith('/') ? `${r.path}z` : `${r.path}/x`;
    warnings.push({
      path: ['proxy', 'routes', i, 'rewrite_prefix'],
      message: `one of path (${r.path}) and rewrite_prefix (${to}) ends with / and the other does not: ${sample} is sent as ${to}${sample.slice(r.path.length)} (the prefix is replaced as a string, as nginx's proxy_pass does)`,
    });
  });
  return warnings;
}

// ---------------------------------------------------------------- redirects

/**
 * A `redirect.scheme` route that can never proxy: no listener of the file speaks that scheme and no trusted proxy
 * can say a request came over it (X-Forwarded-Proto), so every request is redirected, and one that follows the
 * redirect to a port of this proxy is redirected again (a loop in the browser).
 */
function redirectWarnings(cfg: Config): ConfigWarning[] {
  const proxy = cfg.proxy;
  if (!proxy || proxy.trusted_proxies.length > 0) return [];
  const warnings: ConfigWarning[] = [];
  proxy.routes.forEach((r, i) => {
    const scheme = r.redirect?.scheme;
    if (scheme === undefined) return;
    const served = proxy.listeners.some((l) => (l.tls !== undefined) === (scheme === 'https'));
    if (!served)
      warnings.push({
        path: ['proxy', 'routes', i, 'redirect', 'scheme'],
        message: `no listener serves ${scheme} and trusted_proxies is empty (no TLS terminator in front can say X-Forwarded-Proto: ${scheme}): every request of this route is redirected, and never proxied to its pool`,
      });
  });
  return warnings;
}

// ---------------------------------------------------------------- a proxy node leaving

/**
 * A virtual service in front of this file's proxy whose health check cannot see a proxy node leave: without an
 * http(s) check of `proxy.monitor_uri`, a stopping proxy closes its listener while the director still sends it new
 * connections (refused) until `fall` checks failed (docs/proxy.md, Leaving).
 */
function leaveWarnings(cfg: Config): ConfigWarning[] {
  const proxy = cfg.proxy;
  if (!proxy) return [];
  const warnings: ConfigWarning[] = [];
  cfg.virtual_services.forEach((vs, i) => {
    const hc = vs.health_check;
    if (!hc || !checksProxyListener(vs, proxy.listeners)) return;
    if ((hc.type === 'http' || hc.type === 'https') && proxy.monitor_uri !== undefined && hc.path === proxy.monitor_uri) return;
    const fix =
      proxy.monitor_uri === undefined
        ? 'set proxy.monitor_uri and check it: `type: http, path:` the same'
        : `check it: \`type: ${hc.type === 'https' ? 'https' : 'http'}, path: ${proxy.monitor_uri}\``;
    warnings.push({
      path: ['virtual_services', i, 'health_check', hc.type === 'http' || hc.type === 'https' ? 'path' : 'type'],
      message: `this check cannot see a proxy node leave: on SIGTERM the proxy would close while the director still sends it connections; ${fix} (docs/proxy.md, Leaving)`,
    });
  });
  return warnings;
}

// ---------------------------------------------------------------- secrets

/** Each secret the file holds, with its path and what a stranger who knows it can do. */
function secrets(cfg: Config): { path: Path; value: string; risk: string }[] {
  const out: { path: Path; value: string; risk: string }[] = [];
  const cookie = 'anyone who knows it can forge session cookies';
  cfg.sessions?.secrets.forEach((value, i) => {
    out.push({ path: ['sessions', 'secrets', i], value, risk: cookie });
  });
  const redis = cfg.sessions?.redis;
  const redisRisk = 'anyone who knows it can read and write every session in Redis';
  if (redis?.password !== undefined) out.push({ path: ['sessions', 'redis', 'password'], value: redis.password, risk: redisRisk });
  const urlPassword = redis?.url === undefined ? '' : decodeURIComponent(new URL(redis.url).password);
  if (urlPassword !== '') out.push({ path: ['sessions', 'redis', 'url'], value: urlPassword, risk: redisRisk });
  const admin = 'anyone who knows it can use the admin endpoint';
  if (cfg.proxy?.admin.token !== undefined) out.push({ path: ['proxy', 'admin', 'token'], value: cfg.proxy.admin.token, risk: admin });
  cfg.directors.forEach((d, i) => {
    if (d.admin.token !== undefined) out.push({ path: ['directors', i, 'admin', 'token'], value: d.admin.token, risk: admin });
  });
  for (const [name, pool] of Object.entries(cfg.proxy?.pools ?? {}))
    if (pool.sticky)
      out.push({
        path: ['proxy', 'pools', name, 'sticky', 'secret'],
        value: pool.sticky.secret,
        risk: 'anyone who knows it can choose their server',
      });
  return out;
}

function secretWarnings(cfg: Config): ConfigWarning[] {
  const local = isLoopbackOnly(cfg);
  const warnings: ConfigWarning[] = [];
  for (const { path, value, risk } of secrets(cfg)) {
    if (PLACEHOLDER.test(value))
      warnings.push({ path, message: 'is a placeholder: replace it with a random secret (e.g. `openssl rand -base64 32`)' });
    else if (!local && (KNOWN_DEMO_SECRETS.has(value) || KNOWN_DEMO_SECRETS.has(value.toLowerCase())))
      warnings.push({
        path,
        message: `is a published demo secret and this file listens beyond loopback: ${risk}; use a random one (e.g. \`openssl rand -base64 32\`)`,
      });
  }
  return warnings;
}

/**
 * True when everything the file makes listen is on loopback (the local stack): a published secret is then only
 * usable from this host. Fwmark services take any address the firewall marks, so a file with one is never local.
 */
function isLoopbackOnly(cfg: Config): boolean {
  if (cfg.virtual_services.some((vs) => vs.fwmark !== undefined)) return false;
  const listening = [
    ...(cfg.proxy ? [...cfg.proxy.listeners.map((l) => l.address), cfg.proxy.admin.address] : []),
    ...cfg.directors.flatMap((d) => [d.admin.address, ...d.vips]),
    ...cfg.virtual_services.flatMap((vs) => (vs.address === undefined ? [] : [vs.address])),
  ];
  return listening.length > 0 && listening.every(isLoopbackAddress);
}

// ---------------------------------------------------------------- Secure cookies over plain HTTP

/**
 * A browser stores a `Secure` cookie and sends it back over HTTPS only (RFC 6265bis §5.7): behind a plain-HTTP
 * listener the session (or sticky) cookie never returns, so a login there is lost on the next request.
 */
function secureCookieWarnings(cfg: Config): ConfigWarning[] {
  const plain = (cfg.proxy?.listeners ?? []).flatMap((l, i) => (l.tls ? [] : [`proxy.listeners[${i}] (${l.address}:${l.port})`]));
  if (plain.length === 0) return [];
  const where = `${plain.join(', ')} ${plain.length === 1 ? 'is' : 'are'} plain HTTP`;
  const warnings: ConfigWarning[] = [];
  // Unset, `secure` takes its default from the listeners (sessionCookieSecure): true unless all are loopback HTTP.
  if (cfg.sessions && sessionCookieSecure(cfg)) {
    const explicit = cfg.sessions.cookie.secure !== undefined;
    warnings.push({
      path: explicit ? ['sessions', 'cookie', 'secure'] : ['sessions'],
      message: `${where}, and browsers send a Secure cookie back over HTTPS only${explicit ? '' : ' (sessions.cookie.secure is unset, so it defaults to true for a listener beyond loopback)'}: a login over it loses its session at once (serve only TLS listeners, or set secure: false)`,
    });
  }
  for (const [name, pool] of Object.entries(cfg.proxy?.pools ?? {}))
    if (pool.sticky?.secure)
      warnings.push({
        path: ['proxy', 'pools', name, 'sticky', 'secure'],
        message: `${where}, and browsers send a Secure cookie back over HTTPS only: clients there are never kept on their server`,
      });
  return warnings;
}

// ---------------------------------------------------------------- trusted ranges

/**
 * The addresses behind IPVS that a trust list must not cover with a range: the VIP and the real servers (the proxy
 * nodes) of every `dr` service on a proxy listener's port. IPVS never rewrites the client's source address, and
 * in DR the proxy nodes, the director and the VIP share the clients' network: a range around them holds clients.
 */
function proxyNodes(cfg: Config): { address: string; what: string }[] {
  const ports = new Set((cfg.proxy?.listeners ?? []).map((l) => l.port));
  const nodes: { address: string; what: string }[] = [];
  cfg.virtual_services.forEach((vs, i) => {
    if (vs.forwarding !== 'dr' || vs.address === undefined || vs.port === undefined) return;
    if (vs.port !== 0 && !ports.has(vs.port)) return;
    nodes.push({ address: vs.address, what: `the VIP ${vs.address} (virtual_services[${i}])` });
    for (const rs of vs.real_servers) nodes.push({ address: rs.address, what: `the proxy node ${rs.address} (virtual_services[${i}])` });
  });
  return nodes;
}

function trustWarnings(cfg: Config): ConfigWarning[] {
  const nodes = proxyNodes(cfg);
  const proxyHosts = [...new Set(nodes.filter((n) => !n.what.startsWith('the VIP')).map((n) => n.address))];
  const lists: { path: Path; cidrs: readonly string[]; advice: string }[] = [];
  if (cfg.proxy)
    lists.push({
      path: ['proxy', 'trusted_proxies'],
      cidrs: cfg.proxy.trusted_proxies,
      advice: 'list only hosts that really forward to the proxy, one by one (none in plain LVS-DR)',
    });
  if (cfg.apps)
    lists.push({
      path: ['apps', 'trusted_proxies'],
      cidrs: cfg.apps.trusted_proxies,
      advice: `list the proxy nodes one by one${proxyHosts.length ? ` (${proxyHosts.join(', ')})` : ''}`,
    });
  const warnings: ConfigWarning[] = [];
  for (const { path, cidrs, advice } of lists)
    cidrs.forEach((cidr, i) => {
      const range = parseCidr(cidr);
      if (!range) return;
      if (range.prefix === 0) {
        warnings.push({ path: [...path, i], message: `${cidr} trusts every peer: any client can set its own address; ${advice}` });
        return;
      }
      if (range.prefix === (range.family === 4 ? 32 : 128)) return;
      const block = new BlockList();
      block.addSubnet(range.address, range.prefix, range.family === 4 ? 'ipv4' : 'ipv6');
      const inside = nodes.find((n) => isIP(n.address) === range.family && block.check(n.address, range.family === 4 ? 'ipv4' : 'ipv6'));
      if (inside)
        warnings.push({
          path: [...path, i],
          message: `${cidr} contains ${inside.what}: IPVS (DR) hands the clients' own connections to the proxy, so that network holds clients, and any of them could set its own address; ${advice}`,
        });
    });
  return warnings;
}

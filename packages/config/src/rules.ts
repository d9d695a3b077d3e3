import { isIPv4, isIPv6 } from 'node:net';
import type { z } from 'zod';
import { familyOf, isLoopbackAddress } from './address.ts';
import type { PoolConfig, ProxyConfig, SessionsConfig, TiergateConfig, VirtualServiceConfig } from './schema.ts';

type Path = (string | number)[];
type Report = (path: Path, message: string) => void;

/**
 * Variables a `hash_key` template may use (nginx names): exactly those the balancer's key template
 * compiles (test/config-balancer-registry.test.ts at the repo root checks both agree).
 */
const KEY_VARIABLE = /^(request_uri|uri|remote_addr|host|(http|cookie|arg)_[A-Za-z0-9_]+)$/;
/** `${name}` (group 1, group 2 the closing brace) or `$name` (group 3), as nginx writes them. */
const KEY_REFERENCE = /\$(?:\{([^}]*)(\}?)|([A-Za-z0-9_]*))/g;

/**
 * Rules that span fields, checked after the shape is valid. Each reports at the most precise
 * path, and all of them run, so one validation lists every problem.
 */
export function checkRules(cfg: TiergateConfig, ctx: z.RefinementCtx): void {
  const report: Report = (path, message) => ctx.addIssue({ code: 'custom', path, message });
  checkVirtualServices(cfg.virtual_services, report);
  if (cfg.proxy) checkProxy(cfg.proxy, report);
  if (cfg.sessions) checkSessions(cfg.sessions, report);
  const names = new Set<string>();
  cfg.directors.forEach((d, i) => {
    if (names.has(d.name)) report(['directors', i, 'name'], `duplicate director name '${d.name}'`);
    names.add(d.name);
    checkAdminToken(d.admin, ['directors', i, 'admin', 'token'], report);
  });
}

/**
 * An admin listener other hosts can reach needs a token: /reload, /reconcile and the status of every
 * server would otherwise be open to anyone on that network.
 */
function checkAdminToken(admin: { address: string; token?: string | undefined }, path: Path, report: Report): void {
  if (admin.token === undefined && !isLoopbackAddress(admin.address))
    report(path, `required when the admin listens on ${admin.address}, which is not loopback (127.0.0.1 or ::1)`);
}

function checkVirtualServices(services: readonly VirtualServiceConfig[], report: Report): void {
  const seen = new Map<string, number>();
  services.forEach((vs, i) => {
    const at = (...p: Path): Path => ['virtual_services', i, ...p];
    const family = vs.fwmark !== undefined ? (vs.family ?? 'inet') : vs.address ? familyOf(vs.address) : 'inet';
    let identity: string;
    if (vs.fwmark !== undefined) {
      if (vs.address !== undefined) report(at('address'), 'a fwmark service has no address (give either fwmark or address + port)');
      if (vs.port !== undefined) report(at('port'), 'a fwmark service has no port: the firewall mark selects the traffic');
      identity = `fwmark ${vs.fwmark} ${family}`;
    } else {
      if (vs.address === undefined) report(at('address'), 'required (or give fwmark)');
      if (vs.port === undefined) report(at('port'), 'required (or give fwmark)');
      if (vs.family !== undefined && vs.address && vs.family !== family) report(at('family'), `does not match the address (${family})`);
      if (vs.port === 0 && !vs.persistence)
        report(at('port'), 'port 0 (all ports) needs persistence: IPVS only schedules it when persistent');
      identity = `${vs.protocol} ${canonical(vs.address)}:${vs.port}`;
    }
    const first = seen.get(identity);
    if (first !== undefined)
      report(at(vs.fwmark !== undefined ? 'fwmark' : 'port'), `duplicate virtual service ${identity} (also virtual_services[${first}])`);
    else seen.set(identity, i);

    for (const flag of vs.scheduler_flags) {
      if (!flag.startsWith(`${vs.scheduler}-`))
        report(at('scheduler_flags'), `'${flag}' needs scheduler ${flag.slice(0, 2)}, not ${vs.scheduler}`);
    }
    if (vs.one_packet && vs.protocol !== 'udp') report(at('one_packet'), 'one-packet scheduling applies to UDP services only');
    const mask = vs.persistence?.netmask;
    if (mask !== undefined) {
      if (family === 'inet' && (typeof mask !== 'string' || !isNetmask(mask)))
        report(at('persistence', 'netmask'), 'expected a dotted IPv4 netmask such as 255.255.255.0');
      if (family === 'inet6' && typeof mask !== 'number') report(at('persistence', 'netmask'), 'expected an IPv6 prefix length (1-128)');
    }
    if (vs.tunnel && vs.forwarding !== 'tun')
      report(at('tunnel'), `tunnel settings need forwarding: tun (this service uses ${vs.forwarding})`);
    if (vs.tunnel?.type === 'gue' && vs.tunnel.port === undefined)
      report(at('tunnel', 'port'), 'a GUE tunnel needs the destination UDP port');
    if (vs.tunnel && vs.tunnel.type !== 'gue' && vs.tunnel.port !== undefined) report(at('tunnel', 'port'), 'only GUE tunnels take a port');
    if (vs.tunnel?.type === 'gre' && vs.tunnel.checksum === 'remcsum') report(at('tunnel', 'checksum'), 'GRE supports nocsum or csum only');

    const servers = new Map<string, number>();
    vs.real_servers.forEach((rs, j) => {
      const rsAt = (...p: Path): Path => at('real_servers', j, ...p);
      const key = `${canonical(rs.address)}:${rs.port ?? vs.port ?? 0}`;
      const dup = servers.get(key);
      if (dup !== undefined) report(rsAt('address'), `real server ${key} appears twice in this service (also real_servers[${dup}])`);
      else servers.set(key, j);
      if (familyOf(rs.address) !== family && vs.forwarding !== 'tun')
        report(
          rsAt('address'),
          `an ${ipv(family)} service needs ${ipv(family)} real servers (mixed families work only with forwarding: tun)`,
        );
      if (rs.port !== undefined && vs.forwarding !== 'nat') {
        const expected = vs.fwmark !== undefined ? 0 : vs.port;
        if (rs.port !== expected)
          report(
            rsAt('port'),
            `forwarding ${vs.forwarding} cannot translate ports: the real server port must be ${expected} (only nat maps ports)`,
          );
      }
      if (rs.upper_threshold !== 0 && rs.lower_threshold > rs.upper_threshold) report(rsAt('lower_threshold'), 'is above upper_threshold');
    });
    if (vs.sorry_server && familyOf(vs.sorry_server.address) !== family)
      report(at('sorry_server', 'address'), `an ${ipv(family)} service needs an ${ipv(family)} sorry server`);
  });
}

/** One spelling per IPv6 address (`2001:DB8:0::1` → `2001:db8::1`), so duplicates are found however written. */
function canonical(address: string | undefined): string | undefined {
  return address !== undefined && isIPv6(address) ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address;
}

/** Two sockets collide on the same port when the addresses are equal or either is a wildcard (0.0.0.0 / ::). */
function overlaps(a: { address: string; port: number }, b: { address: string; port: number }): boolean {
  const wildcard = (x: string) => x === '0.0.0.0' || canonical(x) === '::';
  return a.port === b.port && a.port !== 0 && (canonical(a.address) === canonical(b.address) || wildcard(a.address) || wildcard(b.address));
}

const ipv = (family: 'inet' | 'inet6'): string => (family === 'inet' ? 'IPv4' : 'IPv6');

function isNetmask(mask: string): boolean {
  if (!isIPv4(mask)) return false;
  const bits = mask.split('.').reduce((acc, o) => (acc << 8) | Number(o), 0) >>> 0;
  const inverted = ~bits >>> 0;
  return (inverted & (inverted + 1)) === 0 && bits !== 0;
}

function checkProxy(proxy: ProxyConfig, report: Report): void {
  proxy.listeners.forEach((l, i) => {
    const j = proxy.listeners.findIndex((other) => overlaps(other, l));
    if (j !== -1 && j < i)
      report(['proxy', 'listeners', i, 'port'], `${l.address}:${l.port} collides with listeners[${j}] (${proxy.listeners[j]?.address})`);
  });
  checkAdminToken(proxy.admin, ['proxy', 'admin', 'token'], report);
  const taken = proxy.listeners.findIndex((l) => overlaps(l, proxy.admin));
  if (taken !== -1)
    report(['proxy', 'admin', 'port'], `the admin listener ${proxy.admin.address}:${proxy.admin.port} collides with listeners[${taken}]`);
  const routes = new Map<string, number>();
  proxy.routes.forEach((r, i) => {
    if (r.pool !== undefined && r.redirect?.prefix !== undefined)
      report(
        ['proxy', 'routes', i, 'pool'],
        'a prefix redirect answers every request of its route: give pool or redirect.prefix, not both',
      );
    else if (r.pool === undefined && r.redirect?.prefix === undefined)
      report(
        ['proxy', 'routes', i, 'pool'],
        r.redirect?.scheme === undefined
          ? 'required (or give redirect.prefix)'
          : `required with redirect.scheme: requests that already came over ${r.redirect.scheme} are proxied to it`,
      );
    else if (r.pool !== undefined && !(r.pool in proxy.pools))
      report(['proxy', 'routes', i, 'pool'], `unknown pool '${r.pool}' (pools: ${Object.keys(proxy.pools).join(', ') || 'none'})`);
    if (r.redirect !== undefined) checkRedirect(r.redirect, ['proxy', 'routes', i, 'redirect'], report);
    if (r.rewrite_prefix !== undefined && r.pool === undefined)
      report(['proxy', 'routes', i, 'rewrite_prefix'], 'rewrites the path sent to the pool: a route without a pool sends none');
    checkHeaderOps(r, ['proxy', 'routes', i], report);
    // Host names are case-insensitive (RFC 9110 §4.2.3) and `a.example.` is `a.example` (the proxy's table agrees).
    const key = `${r.host?.toLowerCase().replace(/\.$/, '') ?? '*'} ${r.path}`;
    if (routes.has(key)) report(['proxy', 'routes', i, 'path'], `duplicate route ${key} (routes[${routes.get(key)}])`);
    routes.set(key, i);
  });
  const pageOf = new Map<number, number>();
  proxy.error_pages.forEach((page, i) => {
    for (const status of page.status) {
      const before = pageOf.get(status);
      if (before !== undefined) report(['proxy', 'error_pages', i, 'status'], `${status} already has a page (error_pages[${before}])`);
      else pageOf.set(status, i);
    }
  });
  if (Object.keys(proxy.pools).length === 0) report(['proxy', 'pools'], 'at least one pool is required');
  else if (proxy.routes.length === 0 && Object.keys(proxy.pools).length !== 1)
    report(['proxy', 'routes'], 'with several pools, routes must say which requests go to which pool');
  for (const [name, pool] of Object.entries(proxy.pools)) checkPool(pool, ['proxy', 'pools', name], report);
}

function checkRedirect(r: NonNullable<ProxyConfig['routes'][number]['redirect']>, at: Path, report: Report): void {
  if ((r.scheme === undefined) === (r.prefix === undefined)) {
    report(at, 'give either scheme (keep the host, path and query) or prefix (a fixed origin before the path and query)');
    return;
  }
  if (r.port !== undefined && r.scheme === undefined) report([...at, 'port'], 'only used with scheme (a prefix carries its own port)');
  if (r.prefix === undefined) return;
  const url = URL.parse(r.prefix);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.host === '')
    report([...at, 'prefix'], `expected an absolute http:// or https:// URL, got '${r.prefix}'`);
  else if (r.prefix.includes('?') || r.prefix.includes('#'))
    report([...at, 'prefix'], "takes no query or fragment: the request's path and query are appended");
  else if (r.prefix.endsWith('/')) report([...at, 'prefix'], "must not end with /: the request's path, which starts with /, is appended");
}

/**
 * Fields a header rule may not `set` or `add`, with the reason. Content-Length and Transfer-Encoding frame the
 * message: a second or different one is how requests are smuggled (RFC 9112 §6.3), and the proxy frames each
 * message itself. The hop-by-hop fields (RFC 9110 §7.6.1) belong to one connection, which the proxy manages;
 * `Expect` is answered by the proxy. `remove` of any of them is allowed (they are dropped anyway).
 */
const FRAMING = 'frames the message: the proxy sets it from the body it sends';
const HOP_BY_HOP = 'is hop-by-hop (RFC 9110 §7.6.1): the proxy manages each connection itself';
const REQUEST_OWN: ReadonlyMap<string, string> = new Map([
  ['content-length', FRAMING],
  ['transfer-encoding', FRAMING],
  ['connection', HOP_BY_HOP],
  ['keep-alive', HOP_BY_HOP],
  ['proxy-connection', HOP_BY_HOP],
  ['te', HOP_BY_HOP],
  ['trailer', HOP_BY_HOP],
  ['upgrade', HOP_BY_HOP],
  ['expect', 'is answered by the proxy itself (it sends 100 Continue when it reads the body)'],
]);
const RESPONSE_OWN: ReadonlyMap<string, string> = new Map([...REQUEST_OWN].filter(([name]) => name !== 'expect' && name !== 'te'));

type HeaderOps = { add: Record<string, string>; set: Record<string, string> };

/** A pool's or a route's `headers` and `response_headers` (at `at`): no `set`/`add` of a field the proxy owns. */
function checkHeaderOps(section: { headers: HeaderOps; response_headers: HeaderOps }, at: Path, report: Report): void {
  for (const [key, own] of [
    ['headers', REQUEST_OWN],
    ['response_headers', RESPONSE_OWN],
  ] as const)
    for (const op of ['set', 'add'] as const)
      for (const name of Object.keys(section[key][op])) {
        const why = own.get(name.toLowerCase());
        if (why !== undefined) report([...at, key, op, name], `${name} ${why}; it cannot be ${op === 'set' ? 'set' : 'added'} by a rule`);
      }
}

function checkPool(pool: PoolConfig, at: Path, report: Report): void {
  checkHeaderOps(pool, at, report);
  const hashing = pool.algorithm === 'hash' || pool.algorithm === 'ip_hash';
  const addresses = new Map<string, number>();
  pool.servers.forEach((s, i) => {
    // nginx: "balancing method does not support the backup parameter" for hash and ip_hash.
    if (s.backup && hashing) report([...at, 'servers', i, 'backup'], `backup servers cannot be used with ${pool.algorithm} (as in nginx)`);
    if (addresses.has(s.address))
      report([...at, 'servers', i, 'address'], `server ${s.address} appears twice in this pool (servers[${addresses.get(s.address)}])`);
    addresses.set(s.address, i);
  });
  if (pool.servers.every((s) => s.backup || s.down))
    report([...at, 'servers'], 'the pool needs at least one primary server that is not down');
  if (pool.algorithm === 'hash' && pool.hash_key === undefined)
    report([...at, 'hash_key'], 'required by algorithm hash (e.g. $request_uri)');
  if (pool.algorithm !== 'hash' && pool.hash_key !== undefined)
    report([...at, 'hash_key'], `only used by algorithm hash (this pool uses ${pool.algorithm})`);
  if (pool.algorithm !== 'hash' && pool.consistent)
    report([...at, 'consistent'], `only used by algorithm hash (this pool uses ${pool.algorithm})`);
  if (pool.algorithm !== 'ip_hash' && pool.ip_hash_whole_address)
    report([...at, 'ip_hash_whole_address'], 'only used by algorithm ip_hash');
  if (pool.hash_key !== undefined) {
    for (const problem of hashKeyProblems(pool.hash_key)) report([...at, 'hash_key'], problem);
  }
  if (pool.protocol !== 'h2' && pool.protocol !== 'https') {
    for (const key of ['tls_verify', 'tls_ca', 'tls_server_name', 'tls_certificate', 'tls_certificate_key'] as const)
      if (pool[key] !== undefined && pool[key] !== false)
        report([...at, key], `only used with protocol https or h2 (TLS to the servers); this pool uses ${pool.protocol}`);
  } else if ((pool.tls_certificate === undefined) !== (pool.tls_certificate_key === undefined)) {
    const [given, missing] =
      pool.tls_certificate === undefined ? ['tls_certificate_key', 'tls_certificate'] : ['tls_certificate', 'tls_certificate_key'];
    report([...at, missing], `${given} needs ${missing} (a client certificate and its key go together)`);
  }
}

function hashKeyProblems(key: string): string[] {
  const problems: string[] = [];
  for (const m of key.matchAll(KEY_REFERENCE)) {
    const name = m[1] ?? m[3] ?? '';
    if (m[1] !== undefined && m[2] === '') problems.push(`missing '}' after '\${${name}'`);
    else if (!KEY_VARIABLE.test(name))
      problems.push(`unknown variable '$${name}' (use $request_uri, $uri, $remote_addr, $host, $http_NAME, $cookie_NAME, $arg_NAME)`);
  }
  return problems;
}

function checkSessions(s: SessionsConfig, report: Report): void {
  if (s.store !== 'redis') return;
  const r = s.redis;
  const at = (k: string): Path => ['sessions', 'redis', k];
  if (r.mode === 'sentinel') {
    if (!r.sentinels?.length) report(at('sentinels'), 'sentinel mode needs at least one sentinel');
    if (!r.master_name) report(at('master_name'), 'sentinel mode needs the master name');
  }
  if (r.mode === 'cluster' && !r.nodes?.length) report(at('nodes'), 'cluster mode needs at least one node');
  if (r.mode === 'standalone' && r.url === undefined && r.nodes !== undefined && r.nodes.length !== 1)
    report(at('nodes'), 'standalone mode takes a url or exactly one node');
}

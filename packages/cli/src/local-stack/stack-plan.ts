import { isIP } from 'node:net';
import { type Config, splitHostPort } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import { RouteTable } from '@tiergate/proxy';

/** Where sessions live in the local stack: `redis` (shared, the fix) or `memory` (per process, the bug). */
export type StackStore = 'redis' | 'memory';

/** One demo app process of the stack. */
export interface PlannedApp {
  /** Shown on its pages and in X-Instance-Id: `app-1`, `app-2`, … in pool order. */
  readonly instance: string;
  readonly host: string;
  readonly port: number;
}

/** What `tiergate up` starts, derived from the file alone (no I/O). */
export interface StackPlan {
  readonly store: StackStore;
  /** The redis-server to start, when the sessions go to Redis at a loopback URL; otherwise none. */
  readonly redis: { readonly host: string; readonly port: number; readonly password: string | undefined } | undefined;
  /** The pool the default route (any host, path `/`) sends to. */
  readonly pool: string;
  readonly apps: readonly PlannedApp[];
  /** `http(s)://host:port` of each proxy listener, in file order. */
  readonly proxyUrls: readonly string[];
  readonly adminUrl: string;
}

/** True for 127.0.0.0/8, ::1 and `localhost`: the only addresses the local stack binds. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** `host:port` for URLs (IPv6 in brackets). */
export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function invalid(message: string): TgError {
  return new TgError('TG_CONFIG_INVALID', `tiergate up: ${message}`);
}

/** The pool that serves `GET /` for any host: what a browser opening the proxy URL reaches. */
export function defaultPoolOf(proxy: NonNullable<Config['proxy']>): string {
  if (proxy.routes.length === 0) return Object.keys(proxy.pools)[0]!;
  const table = new RouteTable(proxy.routes.map((r) => ({ host: r.host, path: r.path, value: r.pool })));
  const pool = table.match(undefined, '/');
  if (pool === undefined) throw invalid('no route without a host matches path / (add one: it is the page the stack opens)');
  return pool;
}

function redisOf(config: Config, store: StackStore): StackPlan['redis'] {
  const redis = config.sessions?.redis;
  if (store !== 'redis' || redis?.mode !== 'standalone' || redis.url === undefined) return undefined;
  const url = new URL(redis.url);
  if (!isLoopbackHost(url.hostname)) return undefined;
  // The apps authenticate with the file's password: the server we start must require the same one.
  const password = redis.password ?? (url.password === '' ? undefined : decodeURIComponent(url.password));
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? 6379 : Number(url.port), password };
}

/**
 * Plans the local stack of a validated file: the Redis to start, one demo app per server of the
 * default route's pool, the proxy's URLs. Everything must be on loopback: `up` is a laptop tool,
 * and binding another host's address would fail late and obscurely.
 */
export function planStack(config: Config, store: StackStore): StackPlan {
  const proxy = config.proxy;
  if (!proxy) throw invalid('the file has no proxy section');
  if (!config.sessions) throw invalid('the file has no sessions section (the demo apps keep their logins there)');
  const pool = defaultPoolOf(proxy);
  const apps = proxy.pools[pool]!.servers.map((s, i): PlannedApp => {
    const hp = splitHostPort(s.address);
    if (!hp || !isLoopbackHost(hp.host)) throw invalid(`pool '${pool}' server ${s.address} is not a loopback address:port`);
    return { instance: `app-${i + 1}`, host: hp.host, port: hp.port };
  });
  const proxyUrls = proxy.listeners.map((l) => {
    if (!isLoopbackHost(l.address)) throw invalid(`proxy listener ${l.address}:${l.port} is not on loopback`);
    if (l.port === 0) throw invalid('a proxy listener has port 0: give it a fixed port, it is the URL to open');
    return `${l.tls ? 'https' : 'http'}://${hostForUrl(l.address)}:${l.port}`;
  });
  return {
    store,
    redis: redisOf(config, store),
    pool,
    apps,
    proxyUrls,
    adminUrl: `http://${hostForUrl(proxy.admin.address)}:${proxy.admin.port}`,
  };
}

/** Every loopback TCP port the plan binds, with who binds it (for the "port in use" check). */
export function portsOf(plan: StackPlan, config: Config): { host: string; port: number; owner: string }[] {
  const ports = plan.apps.map((a) => ({ host: a.host, port: a.port, owner: a.instance }));
  if (plan.redis) ports.unshift({ host: plan.redis.host, port: plan.redis.port, owner: 'redis-server' });
  for (const l of config.proxy?.listeners ?? []) ports.push({ host: l.address, port: l.port, owner: 'proxy' });
  return ports;
}

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Http2SecureServer, Http2Server } from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, Server as NetServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { isDeepStrictEqual } from 'node:util';
import type { DeepReadonly, ListenerConfig, ProxyConfig } from '@tiergate/config';
import { toBlockList } from '@tiergate/config/runtime';
import { type ErrorCode, httpStatusOf, TgError } from '@tiergate/errors';
import { compileAccess } from './access-rules.ts';
import type { RequestEvent } from './channels.ts';
import { ClientConcurrency } from './client-concurrency.ts';
import { ClientRequest } from './client-request.ts';
import { compileGzip } from './compression.ts';
import { acceptErrorLogger, connectionLimit } from './connection-limit.ts';
import { loadErrorPages, sendError } from './error-response.ts';
import {
  type CompiledRoute,
  expireAttempts,
  type Generation,
  handleRequest,
  handleUpgrade,
  InFlight,
  type ListenerInfo,
  type ProxyContext,
  type Redirect,
  type RedirectRoute,
  TIMEOUT_SWEEP_MS,
} from './exchange.ts';
import { compileHeaderRules } from './forward-headers.ts';
import { type Http1AnyRequest, type Http1Response, Http1Server, type Http1ServerOptions } from './http1-server.ts';
import { createHttp2Listener, Http2Sessions, http2Settings } from './http2-server.ts';
import type { Http2StreamRequestLike, Http2StreamResponse } from './http2-stream.ts';
import { ListenerTls } from './listener-tls.ts';
import { http } from './node-http.ts';
import { TokenBucketLimiter } from './rate-limiter.ts';
import { prefixRewriter } from './request-target.ts';
import { type RouteSpec, RouteTable } from './route-table.ts';
import { type PoolDeps, UpstreamPool } from './upstream-pool.ts';

/** The validated, frozen `proxy` section of tiergate.yaml. */
export type ProxySection = DeepReadonly<ProxyConfig>;

/** The subset of a pino logger the proxy uses. */
export interface ProxyLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface StartProxyOptions {
  readonly logger?: ProxyLogger;
  /** Uniform in [0, 1): balancer randomness and health-check jitter. */
  readonly random?: () => number;
  /** Milliseconds; the balancer's fail_timeout and slow_start clock. */
  readonly now?: () => number;
  /**
   * `telemetry.tracing.trust_incoming`: continue the `traceparent` of any client, not only of peers in
   * `trusted_proxies` (default false). Spans are made only while an OpenTelemetry SDK is registered.
   */
  readonly trustIncomingTraceContext?: boolean;
  /**
   * On close(), how long requests arriving on open keep-alive connections are still served (with
   * `Connection: close`) before the idle ones are closed; default 1000 ms, bounded by shutdown_timeout.
   */
  readonly idleCloseGraceMs?: number;
  /** Session ticket key (48 bytes) of each listener, by index, shared by the workers (listener-tls.ts TicketKeyRotation). */
  readonly ticketKeys?: readonly (Buffer | undefined)[];
}

/** One bound listener. */
export interface BoundAddress {
  readonly address: string;
  readonly port: number;
  readonly family: string;
  readonly tls: boolean;
}

/** What the admin endpoint's /status shows. */
export interface ProxyStatus {
  readonly listeners: BoundAddress[];
  readonly draining: boolean;
  readonly inFlight: number;
  /** Client connections open (every listener; accepted, TLS handshakes in progress included). */
  readonly connections: number;
  readonly pools: ReturnType<UpstreamPool['status']>[];
}

/** A running proxy. */
export interface ProxyServer extends AsyncDisposable {
  /** The bound addresses, in listener order (a `port: 0` listener shows its real port). */
  addresses(): BoundAddress[];
  /**
   * Graceful stop: stop accepting; for a short grace keep serving requests that arrive on open
   * keep-alive connections, each answered with `Connection: close`; then close idle connections, let
   * requests in flight finish for up to `shutdown_timeout` (grace included), cut what remains and close
   * upstream connections. Idempotent.
   */
  close(): Promise<void>;
  status(): ProxyStatus;
  /**
   * Hot reload of an already validated section: routes, pools, trusted proxies, limits, header rules
   * and the access-log switch swap atomically; requests already started finish on what they started
   * with. Servers removed from a pool are drained (their connections close after their last request);
   * servers added to a pool with a `health_check` take traffic only after a passing check (the reload
   * waits up to the check's timeout + 1 s for it). Listener changes need a restart: rejected with
   * TG_CONFIG_INVALID, the running configuration stays. TLS listeners re-read their files (listener-tls.ts).
   * Reloads run one at a time; after close() began they reject with TG_PROXY_SHUTTING_DOWN.
   */
  reload(section: ProxySection): Promise<void>;
  /**
   * The node is leaving (true) or back (false): `monitor_uri` answers 503 instead of 200 on every listener, and
   * every response says `Connection: close` so keep-alive clients reconnect (through the director, to another
   * node), while the listeners keep accepting and serving. What a load balancer's health check sees before the
   * node closes (Envoy `/healthcheck/fail`). close() keeps it failing.
   */
  failHealthCheck(failing: boolean): void;
  /** A new session ticket key for the TLS listener at `index` (a rotation; listener-tls.ts). */
  setTicketKeys(index: number, keys: Buffer): void;
}

/**
 * Starts the L7 proxy: one node:http(s) server per listener, one UpstreamPool per pool, routes
 * compiled once. Resolves when every listener is bound; a listener that cannot bind rejects with
 * TG_PROXY_LISTEN after closing what was opened.
 */
export async function startProxy(config: ProxySection, options: StartProxyOptions = {}): Promise<ProxyServer> {
  const deps: PoolDeps = { random: options.random ?? Math.random, now: options.now ?? Date.now };
  const log = options.logger;
  const pools = buildPools(config, undefined, deps);
  /** Every pool generation not yet disposed (current and draining ones), for shutdown. */
  const live = new Set(pools.values());
  let gen: Generation;
  try {
    gen = newGeneration(config, pools, log);
  } catch (err) {
    // An error page that cannot be read (or a route to no pool): the pools' health checks must not outlive it.
    await Promise.all([...pools.values()].map((p) => p.close(true)));
    throw err;
  }
  const ctx: ProxyContext = {
    gen,
    now: deps.now,
    draining: false,
    healthFailing: false,
    inFlight: new InFlight(),
    clients: new ClientConcurrency(),
    trustIncoming: options.trustIncomingTraceContext ?? false,
  };
  const servers: Listening[] = [];
  try {
    for (const [i, l] of config.listeners.entries()) {
      const tls = l.tls ? ListenerTls.load(l, i) : undefined;
      const keys = options.ticketKeys?.[i];
      if (keys) tls?.setTicketKeys(keys);
      servers.push(await listen(l, tls, config, ctx, log));
    }
  } catch (err) {
    await Promise.all(servers.map(({ server }) => new Promise((r) => server.close(r))));
    await Promise.all([...pools.values()].map((p) => p.close(true)));
    throw err;
  }
  for (const p of pools.values()) p.activate();
  // Upstream response-headers and idle timeouts (exchange.ts); stopped once the last request is done.
  const sweep = setInterval(() => expireAttempts(ctx, performance.now()), TIMEOUT_SWEEP_MS).unref();
  // Read once: server.address() is null once a listener closes, and /status and /metrics are asked for them
  // through a drain too (the bound addresses do not change while the proxy lives; a reload keeps them).
  const bound: readonly BoundAddress[] = servers.map(({ server, tls }) => {
    const a = server.address() as AddressInfo;
    return { address: a.address, port: a.port, family: a.family, tls };
  });
  const addresses = (): BoundAddress[] => bound.map((b) => ({ ...b }));
  log?.info({ listeners: addresses(), maxConnections: servers[0]?.server.maxConnections }, 'proxy listening');
  let current = { config, pools };
  let closing: Promise<void> | undefined;
  let reloading: Promise<void> = Promise.resolve();
  const close = (): Promise<void> => {
    closing ??= shutdown(ctx, servers, live, current.config.shutdown_timeout, options.idleCloseGraceMs ?? IDLE_CLOSE_GRACE_MS, log).finally(
      () => clearInterval(sweep),
    );
    return closing;
  };
  const reloadOnce = async (next: ProxySection): Promise<void> => {
    if (closing) throw new TgError('TG_PROXY_SHUTTING_DOWN', 'the proxy is shutting down');
    if (!isDeepStrictEqual(next.listeners, current.config.listeners))
      throw new TgError('TG_CONFIG_INVALID', 'listeners cannot change on reload', { details: { path: ['proxy', 'listeners'] } });
    // Re-reads every certificate, key and CA file: one that fails rejects the whole reload (nothing applied yet).
    const contexts = next.listeners.map((l, i) => (l.tls ? ListenerTls.load(l, i) : undefined));
    const nextPools = buildPools(next, current.pools, deps);
    const fresh = [...nextPools.values()].filter((p) => !live.has(p));
    let gen: Generation;
    try {
      gen = newGeneration(next, nextPools, log);
    } catch (err) {
      await Promise.all(fresh.map((p) => p.close(false))); // not forced: shares with the live generation
      throw err;
    }
    for (const p of fresh) {
      live.add(p);
      p.activate();
    }
    await Promise.all(fresh.map((p) => p.ready()));
    if (closing) throw new TgError('TG_PROXY_SHUTTING_DOWN', 'the proxy is shutting down');
    servers.forEach((listening, i) => {
      const { listenerTls, sessions } = listening;
      applyServerOptions(listening, next);
      if (sessions) {
        sessions.headerTimeout = next.limits.client_header_timeout;
        sessions.maxHeaderListSize = next.limits.max_header_size;
        sessions.maxStreams = next.limits.keepalive_requests;
      }
      if (listenerTls && contexts[i]) listenerTls.replace(contexts[i]);
    });
    ctx.gen = gen;
    for (const p of current.pools.values()) {
      if (nextPools.get(p.name) === p) continue;
      void p.retire().then(() => live.delete(p));
    }
    current = { config: next, pools: nextPools };
    log?.info({ pools: [...nextPools.keys()], replaced: fresh.map((p) => p.name) }, 'proxy reloaded');
  };
  return {
    addresses,
    close,
    [Symbol.asyncDispose]: close,
    failHealthCheck: (failing) => {
      if (failing !== ctx.healthFailing)
        log?.info({ monitorUri: current.config.monitor_uri ?? null }, failing ? 'health check failing' : 'health check passing');
      ctx.healthFailing = failing;
      ctx.draining = failing || closing !== undefined;
    },
    setTicketKeys: (index, keys) => servers[index]?.listenerTls?.setTicketKeys(keys),
    reload: (next) => {
      const run = reloading.then(() => reloadOnce(next));
      reloading = run.catch(() => {});
      return run;
    },
    status: () => ({
      listeners: addresses(),
      draining: ctx.draining,
      inFlight: ctx.inFlight.size,
      connections: servers.reduce((n, l) => n + l.sockets.size, 0),
      pools: [...current.pools.values()].map((p) => p.status()),
    }),
  };
}

/**
 * The pools of `config`; with `previous` (a reload), a pool whose section is unchanged is kept as it is
 * (balancer, health and connections), and a changed one is a new generation built from the old one.
 */
function buildPools(
  config: ProxySection,
  previous: ReadonlyMap<string, UpstreamPool> | undefined,
  deps: PoolDeps,
): Map<string, UpstreamPool> {
  const pools = new Map<string, UpstreamPool>();
  try {
    for (const [name, section] of Object.entries(config.pools)) {
      const old = previous?.get(name);
      if (old?.sameConfig(section)) pools.set(name, old);
      else pools.set(name, new UpstreamPool(name, section, deps, previous ? { previous: old } : undefined));
    }
  } catch (err) {
    for (const p of pools.values()) if (p !== previous?.get(p.name)) void p.close(false); // not forced: it shares undici Pools with the live generation
    throw err;
  }
  return pools;
}

function newGeneration(config: ProxySection, pools: ReadonlyMap<string, UpstreamPool>, log: ProxyLogger | undefined): Generation {
  const limit = config.limits.rate_limit;
  return {
    routes: compileRoutes(config, pools),
    trusted: config.trusted_proxies.length > 0 ? toBlockList(config.trusted_proxies) : undefined,
    recursive: config.real_ip_recursive,
    accessLog: config.access_log && log ? (e: RequestEvent) => log.info({ ...e }, 'request') : undefined,
    limiter: limit ? new TokenBucketLimiter(limit) : undefined,
    maxConcurrentPerClient: config.limits.max_concurrent_per_client,
    clientBodyTimeoutMs: config.limits.client_body_timeout,
    sendTimeoutMs: config.limits.send_timeout,
    upgrades: new Set(config.upgrades.map((u) => u.toLowerCase())),
    monitorUri: config.monitor_uri,
    gzip: compileGzip(config.gzip),
    errorPages: config.error_pages.length > 0 ? loadErrorPages(config.error_pages) : undefined,
  };
}

function compileRoutes(config: ProxySection, pools: ReadonlyMap<string, UpstreamPool>): RouteTable<CompiledRoute | RedirectRoute> {
  const specs: RouteSpec<CompiledRoute | RedirectRoute>[] = [];
  const limit = config.limits.max_body_size;
  if (config.routes.length === 0) {
    const [name, pool] = Object.entries(config.pools)[0]!;
    const rules = compileHeaderRules(pool, undefined);
    // The same fields as a configured route's (one object shape for the exchange to read).
    const value = {
      route: '/',
      pool: pools.get(name)!,
      rules,
      maxBodySize: limit,
      forwardPath: 'raw' as const,
      rewrite: undefined,
      redirect: undefined,
      access: undefined,
    };
    specs.push({ path: '/', value });
  }
  for (const r of config.routes) {
    const redirect = r.redirect && compileRedirect(r.redirect);
    if (r.pool === undefined) {
      specs.push({ host: r.host, path: r.path, value: { route: r.path, redirect: redirect! } });
      continue;
    }
    const pool = pools.get(r.pool);
    if (!pool) throw new TgError('TG_CONFIG_INVALID', `route ${r.host ?? '*'}${r.path}: unknown pool '${r.pool}'`);
    const rules = compileHeaderRules(config.pools[r.pool]!, r);
    const access = r.access && compileAccess(r.access);
    const rewrite = r.rewrite_prefix === undefined ? undefined : prefixRewriter(r.path, r.rewrite_prefix);
    const value = {
      route: r.path,
      pool,
      rules,
      maxBodySize: r.max_body_size ?? limit,
      forwardPath: r.forward_path,
      rewrite,
      redirect,
      access,
    };
    specs.push({ host: r.host, path: r.path, value });
  }
  return new RouteTable(specs);
}

/** `routes[].redirect` as the exchange uses it: the target and host go after the scheme (and port) or the prefix. */
function compileRedirect(r: NonNullable<ProxySection['routes'][number]['redirect']>): Redirect {
  const { prefix, scheme, status } = r;
  if (prefix !== undefined) return { status, scheme: undefined, location: (target) => prefix + target };
  const port = r.port === undefined ? '' : `:${r.port}`;
  return { status, scheme, location: (target, host) => `${scheme}://${host}${port}${target}` };
}

/**
 * A listener's server: http1-server.ts for plain HTTP/1.1; for TLS, a tls.Server (HTTP/1.1 only) or node:http2's
 * secure server (h2 and HTTP/1.1 by ALPN) handing HTTP/1.1 connections to http1-server.ts; node:http2 for h2c;
 * node:http and node:https with `http1_server: node`.
 */
type ListenerServer = Server | TlsServer | Http2SecureServer | Http2Server | Http1Server;

/** One bound listener; `sessions` when it serves HTTP/2. */
interface Listening {
  readonly server: ListenerServer;
  /** A TLS listener's lean HTTP/1.1 server, which serves the connections `server` accepted for HTTP/1.1. */
  readonly http1: Http1Server | undefined;
  readonly tls: boolean;
  /** A TLS listener's certificates and ticket key: what a reload and a key rotation change. */
  readonly listenerTls: ListenerTls | undefined;
  readonly sessions: Http2Sessions | undefined;
  /**
   * Every client connection the listener accepted and that is still open, as the socket accept() gave: what a
   * forced shutdown cuts when its servers did not (a TLS handshake in progress, an h2 session node cannot close).
   */
  readonly sockets: Set<Socket>;
}

async function listen(
  l: DeepReadonly<ListenerConfig>,
  listenerTls: ListenerTls | undefined,
  config: ProxySection,
  ctx: ProxyContext,
  log: ProxyLogger | undefined,
): Promise<Listening> {
  const limits = config.limits;
  const httpOptions = {
    // Keeps the client connection when undici destroys a request body it has fully read (client-request.ts).
    IncomingMessage: ClientRequest,
    maxHeaderSize: limits.max_header_size,
    keepAliveTimeout: limits.keepalive_timeout,
    maxRequestsPerSocket: limits.keepalive_requests,
    headersTimeout: limits.client_header_timeout,
    requestTimeout: limits.client_request_timeout,
    // node checks both timeouts on this period (default 30 s, which would make a 5 s header timeout fire late).
    connectionsCheckingInterval: Math.max(50, Math.min(1000, limits.client_header_timeout / 4)),
    // Hop-by-hop and repeated headers are handled on rawHeaders; node's merged view is only read for a few fields.
    joinDuplicateHeaders: false,
    // Only an allowed Upgrade becomes node's 'upgrade' event (a tunnel); any other is parsed and proxied as a
    // plain request, whose Upgrade and Connection forward-headers.ts drops as hop-by-hop: what nginx does
    // without `proxy_set_header Upgrade`. Tunneling `h2c` would let a client speak HTTP/2 to the app past
    // the routes, header rules, X-Real-IP and limits of every later request on that connection.
    shouldUpgradeCallback: (req: IncomingMessage) => upgradeAllowed(ctx.gen.upgrades, req.headers.upgrade),
  };
  const info: ListenerInfo = { scheme: l.tls ? 'https' : 'http', port: l.port, tls: listenerTls };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const monitor = ctx.gen.monitorUri;
    if (monitor !== undefined && isMonitorRequest(req.url, monitor)) answerMonitor(ctx, res);
    else handleRequest(ctx, info, req, res);
  };
  const tls = listenerTls?.options();
  const http2 = l.http2 ?? l.tls !== undefined;
  const sessions = http2 ? new Http2Sessions(limits.client_header_timeout, limits.max_header_size, limits.keepalive_requests) : undefined;
  // HTTP/1.1 on net.Socket + llhttp instead of node:http(s), a third less CPU for the server side
  // (http1-server.ts); as strict as node's parser (test/http1-server-differential.test.ts). On a TLS listener
  // it takes the connections whose handshake chose HTTP/1.1. Its requests and responses carry what the
  // exchange reads of node:http's (as http2-stream.ts's facades).
  const http1 =
    l.http1_server === 'node'
      ? undefined
      : new Http1Server(
          httpOptions as unknown as Http1ServerOptions,
          onRequest as unknown as (req: Http1AnyRequest, res: Http1Response) => void,
        );
  let server: ListenerServer;
  if (sessions) {
    const onStream = (req: Http2StreamRequestLike, res: Http2StreamResponse) => {
      // Draining: the h2 twin of `Connection: close` is GOAWAY, sent once; this stream and those already
      // open are still served, and the client opens its next ones elsewhere (through the director).
      if (ctx.draining) closeSession(req);
      // max_header_size on h2, where node's HTTP/1.1 parser does not count (http2Settings): 431, as there.
      if (req.headerListSize > sessions.maxHeaderListSize) {
        sendError(res as unknown as ServerResponse, 'TG_PROXY_HEADERS_TOO_LARGE', false, [], ctx.gen.errorPages);
        return;
      }
      // The facades carry what the exchange reads of node:http's request and response (http2-stream.ts).
      onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    };
    const h2 = createHttp2Listener(tls, limits, http1 ?? onRequest, onStream);
    // node's HTTP/1.1 code reads these from the server for the HTTP/1.1 connections of a TLS listener.
    if (!http1) Object.assign(h2, httpOptions);
    h2.on('session', (session) => {
      sessions.add(session);
      // nginx keepalive_timeout for h2: a session with no frames for that long is closed, or cut
      // (Http2Sessions.expire).
      session.setTimeout((h2 as unknown as Server).keepAliveTimeout, () => sessions.expire(session));
    });
    server = h2;
  } else if (tls && http1) {
    // noDelay and no half-open connections, as node:https (a TLS socket that half-closes during the handshake,
    // before it is the lean server's, would otherwise stay open).
    server = createTlsServer({ ...tls, ALPNProtocols: ['http/1.1'], noDelay: true }, (socket) => http1.accept(socket));
  } else if (tls) {
    server = createHttpsServer({ ...httpOptions, ...tls }, onRequest);
  } else {
    server = http1 ?? http.createServer(httpOptions, onRequest);
  }
  // The http2 secure server is a tls.Server too: reloads and ticket keys reach it the same way.
  if (listenerTls) listenerTls.attach(server as TlsServer);
  // The server whose requests these are: the lean server also where a TLS server accepted the connection.
  const requests = http1 ?? server;
  requests.on('checkContinue', onRequest);
  requests.on('clientError', onClientError);
  requests.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => onUpgrade(ctx, info, req, socket, head));
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const listening: Listening = {
    server,
    http1: http1 === server ? undefined : http1,
    tls: tls !== undefined,
    listenerTls,
    sessions,
    sockets,
  };
  applyServerOptions(listening, config);
  await new Promise<void>((resolve, reject) => {
    const onListenError = (cause: Error) =>
      reject(new TgError('TG_PROXY_LISTEN', `cannot listen on ${l.address}:${l.port}: ${cause.message}`, { cause }));
    server.once('error', onListenError);
    server.listen(l.port, l.address, () => {
      server.off('error', onListenError);
      resolve();
    });
  });
  server.on('error', acceptErrorLogger(log, `${l.address}:${(server.address() as AddressInfo).port}`));
  // X-Forwarded-Port tells the app the port the client used: the real one when the config said 0.
  (info as { port: number }).port = (server.address() as AddressInfo).port;
  return listening;
}

function closeSession(req: Http2StreamRequestLike): void {
  const session = req.stream.session;
  if (session && !session.closed) session.close();
}

/**
 * Whether every protocol an `Upgrade` field offers (RFC 9110 §7.8: a comma-separated list, protocol
 * names compared case-insensitively) is in `allowed`; `websocket, h2c` is refused whole.
 */
function upgradeAllowed(allowed: ReadonlySet<string>, upgrade: string | undefined): boolean {
  if (upgrade === undefined) return false;
  let any = false;
  for (const token of upgrade.split(',')) {
    const p = token.trim().toLowerCase();
    if (p === '') continue;
    if (!allowed.has(p)) return false;
    any = true;
  }
  return any;
}

/** Whether `url` is `monitor_uri`, with or without a query (HAProxy's monitor-uri compares the path). */
function isMonitorRequest(url: string | undefined, monitor: string): boolean {
  // Hot path (every request): no allocation.
  if (url === undefined || !url.startsWith(monitor)) return false;
  return url.length === monitor.length || url.charCodeAt(monitor.length) === 0x3f;
}

/**
 * `monitor_uri`, answered by the proxy itself on every listener and never forwarded, logged or counted (HAProxy's
 * monitor-uri is not logged either: a director checks every few seconds): 200 while the node serves, 503 once it is
 * leaving, so a director's http check quiesces it before its listeners close (docs/proxy.md, Leaving).
 */
function answerMonitor(ctx: ProxyContext, res: ServerResponse): void {
  const failing = ctx.draining;
  const body = failing ? 'draining\n' : 'ok\n';
  if (failing) res.shouldKeepAlive = false;
  res.writeHead(failing ? 503 : 200, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** An Upgrade request gets a ServerResponse on its raw socket, so refusals are ordinary HTTP answers. */
function onUpgrade(ctx: ProxyContext, info: ListenerInfo, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  // Without the server's keep-alive handling, the connection ends with the response (a tunnel detaches first).
  res.on('finish', () => socket.end());
  handleUpgrade(ctx, info, req, res, { socket, head, protocol: String(req.headers.upgrade) });
}

/**
 * Options of a listener's server that a reload may change (they apply to connections accepted after it,
 * max_connections at once). `limits.max_connections`: beyond it node closes new connections right after
 * accept, before reading a byte (nginx `worker_connections`-like): cheaper under a flood than a 503.
 * `auto` keeps it below the process's descriptor limit (connection-limit.ts).
 */
function applyServerOptions({ server: listenerServer, http1 }: Listening, config: ProxySection): void {
  const limits = config.limits;
  listenerServer.maxConnections = connectionLimit(limits.max_connections);
  // Read by node:http(s) for each new connection, and by a TLS listener's node:http2 server for its HTTP/1.1
  // ones (http1_server: node); by the lean server itself (a TLS listener's own, or the listener).
  for (const s of http1 ? [listenerServer, http1] : [listenerServer]) {
    // maxHeaderSize: read by node for each new connection's parser (storeHTTPOptions), undeclared by @types/node.
    const server = s as Server & { maxHeaderSize: number };
    server.maxHeaderSize = limits.max_header_size;
    server.keepAliveTimeout = limits.keepalive_timeout;
    server.maxRequestsPerSocket = limits.keepalive_requests;
    server.headersTimeout = limits.client_header_timeout;
    server.requestTimeout = limits.client_request_timeout;
  }
  if ('updateSettings' in listenerServer) listenerServer.updateSettings(http2Settings(limits));
}

/** Requests node rejects before they reach the proxy: short answers with the catalogue code, then close. */
function onClientError(err: Error & { code?: string }, socket: Duplex): void {
  const inProgress = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const code: ErrorCode =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? 'TG_PROXY_HEADERS_TOO_LARGE'
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? 'TG_PROXY_CLIENT_TIMEOUT'
        : 'TG_PROXY_BAD_REQUEST';
  const status = httpStatusOf(code);
  const body = `${status} ${http.STATUS_CODES[status]} (${code})\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${body.length}\r\nx-tiergate-error: ${code}\r\n\r\n${body}`,
  );
}

/** Stops accepting connections; resolves once every connection has closed. */
function stopAccepting(server: ListenerServer): Promise<void> {
  return new Promise((resolve) => NetServer.prototype.close.call(server, () => resolve()));
}

async function shutdown(
  ctx: ProxyContext,
  servers: readonly Listening[],
  pools: ReadonlySet<UpstreamPool>,
  timeoutMs: number,
  graceMs: number,
  log: ProxyLogger | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  ctx.draining = true;
  // Closing an idle keep-alive connection at once races with a client that is writing its next request
  // on it right then: the request is lost unanswered (RFC 9112 §9.6). So for a short grace, requests on
  // open connections are still served, each answered with `Connection: close`; only the connections
  // still idle after it are closed. http.Server#close() would close idle connections at once (node >= 19),
  // so listening stops through net.Server#close, which only stops accepting.
  const closed = Promise.all(servers.map(({ server }) => stopAccepting(server)));
  await waitForIdleGrace(servers, Math.min(graceMs, timeoutMs));
  // Now http.Server#close: closes the idle connections and stops its timeout checks. An HTTP/2 listener's
  // close() also sends GOAWAY to every session (idle ones close, busy ones once their streams are done).
  for (const { server, http1 } of servers) {
    server.close();
    http1?.close();
  }
  const drained = await waitForDrain(ctx, Math.max(0, deadline - Date.now()));
  if (!drained) log?.warn({ inFlight: ctx.inFlight.size }, 'shutdown timeout: cutting requests in flight');
  for (const { server, http1, sessions } of servers) {
    http1?.closeAllConnections();
    // Http2SecureServer has no closeAllConnections, but tracks its HTTP/1.1 connections as http.Server does.
    if (server instanceof Http1Server) server.closeAllConnections();
    else http.Server.prototype.closeAllConnections.call(server as Server);
    sessions?.destroyAll();
  }
  // Upgraded connections are no longer the http server's: cut open tunnels here.
  ctx.inFlight.forEach((ex) => {
    ex.destroyTunnel();
  });
  // What is still open is no server's to close: a TLS handshake in progress (tls.Server's handshakeTimeout is
  // 120 s), an h2 session node could not close (Http2Sessions.expire). Listening stops only when every
  // accepted connection has closed, so any one of them would hold the process up for good.
  for (const { sockets } of servers) for (const socket of sockets) socket.destroy();
  await closed;
  await Promise.all([...pools].map((p) => p.close(!drained)));
  log?.info({}, 'proxy stopped');
}

/** How long a draining proxy keeps serving requests on open keep-alive connections before closing idle ones. */
const IDLE_CLOSE_GRACE_MS = 1000;

/** Resolves once no client connection is open, or after `ms`. */
async function waitForIdleGrace(servers: readonly Listening[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  const open = () => Promise.all(servers.map(({ server }) => new Promise<number>((r) => server.getConnections((_e, n) => r(n ?? 0)))));
  while (Date.now() < until && (await open()).some((n) => n > 0)) await new Promise((r) => setTimeout(r, 20));
}

/** Resolves true once no request is in flight, false when `timeoutMs` passed first. */
async function waitForDrain(ctx: ProxyContext, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (ctx.inFlight.size > 0) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
  }
  return true;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { BlockList } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Gzip } from 'node:zlib';
import type { Span, Tracer } from '@opentelemetry/api';
import type { ErrorCode } from '@tiergate/errors';
import type { Dispatcher } from 'undici';
import { type AttemptEvent, attemptChannel, type RequestEvent, requestChannel } from './channels.ts';
import { forwardedClient, type PeerInfo, peerOf } from './client-address.ts';
import type { ClientConcurrency } from './client-concurrency.ts';
import { type GzipSettings, gzipResponse, gzipStream } from './compression.ts';
import { type ErrorPages, sendError, sendRedirect } from './error-response.ts';
import { clientResponseHeaders, type HeaderRules, upstreamRequestHeaders } from './forward-headers.ts';
import { RequestKeyVars } from './key-vars.ts';
import type { ClientCertFacts } from './listener-tls.ts';
import type { TokenBucketLimiter } from './rate-limiter.ts';
import { requestIdOf } from './request-id.ts';
import { refusedRequest } from './request-screen.ts';
import { type ForwardPath, parseTarget, type RequestTarget } from './request-target.ts';
import { type RouteTable, stripPort } from './route-table.ts';
import { SlotList } from './slot-list.ts';
import { activeTracer, endAttemptSpan, endServerSpan, setRoute, startAttemptSpan, startServerSpan, withTraceContext } from './tracing.ts';
import { joinSockets } from './tunnel.ts';
import { errors } from './undici-parts.ts';
import { classifyUpstreamError } from './upstream-error.ts';
import { acceptsTrailers, deferHead, isTrailersOnly, rawHeaderList, speaksH2, trailerAnnouncement, trailersFor } from './upstream-h2.ts';
import { NEXT, statusBit, type UpstreamPool } from './upstream-pool.ts';

/** What a matched route resolves to, compiled at startup. */
export interface CompiledRoute {
  /** The route's path prefix as configured (the span attribute `http.route`). */
  readonly route: string;
  readonly pool: UpstreamPool;
  readonly rules: HeaderRules;
  /** Bytes; 0 = no limit (nginx client_max_body_size 0). */
  readonly maxBodySize: number;
  /** What target the upstream gets (request-target.ts). */
  readonly forwardPath: ForwardPath;
  /** `rewrite_prefix`: the target sent upstream, the route's path replaced (request-target.ts prefixRewriter). */
  readonly rewrite?: ((target: RequestTarget) => string | undefined) | undefined;
  /** `redirect.scheme`: requests that came over the other scheme are redirected, the rest proxied. */
  readonly redirect?: Redirect | undefined;
  /** `access` (nginx allow/deny): whether the client address may use the route (access-rules.ts). */
  readonly access?: ((clientAddress: string) => boolean) | undefined;
}

/** `routes[].redirect`, compiled (proxy-server.ts compileRoutes). */
export interface Redirect {
  readonly status: number;
  /** `scheme` form: the scheme requests must come over to be proxied; undefined for `prefix` (always redirects). */
  readonly scheme: 'http' | 'https' | undefined;
  /** The Location for a request target (origin-form, as received) and the request's host (no port). */
  location(target: string, host: string): string;
}

/** A `redirect.prefix` route: it answers every request itself and has no pool. */
export interface RedirectRoute {
  readonly route: string;
  readonly pool?: undefined;
  readonly redirect: Redirect;
}

/** Everything a request needs from one configuration; a reload swaps it whole. */
export interface Generation {
  readonly routes: RouteTable<CompiledRoute | RedirectRoute>;
  readonly trusted: BlockList | undefined;
  readonly recursive: boolean;
  readonly accessLog: ((event: RequestEvent) => void) | undefined;
  /** `limits.rate_limit` per client address. */
  readonly limiter: TokenBucketLimiter | undefined;
  /** `limits.max_concurrent_per_client` (0 = no limit), counted in ProxyContext.clients. */
  readonly maxConcurrentPerClient: number;
  /** `limits.client_body_timeout` and `limits.send_timeout`, ms (0 = none). */
  readonly clientBodyTimeoutMs: number;
  readonly sendTimeoutMs: number;
  /** `upgrades`, lower-cased: the `Upgrade` protocols tunneled (proxy-server.ts asks before node's 'upgrade' event). */
  readonly upgrades: ReadonlySet<string>;
  /** `monitor_uri`: answered by the proxy itself (proxy-server.ts answerMonitor). */
  readonly monitorUri: string | undefined;
  /** `gzip`, when enabled (compression.ts). */
  readonly gzip: GzipSettings | undefined;
  /** `error_pages`: the bodies of the proxy's own error answers, per status (error-response.ts). */
  readonly errorPages: ErrorPages | undefined;
}

/** State shared by every request of one proxy. */
export interface ProxyContext {
  /** The current configuration; a request reads it once, when it starts, and keeps it to the end. */
  gen: Generation;
  readonly now: () => number;
  /**
   * Set while the node is leaving: by failHealthCheck(true) (the listeners still accept) and by close(). Responses
   * say `Connection: close`, so keep-alive clients reconnect (through the director, to another node).
   */
  draining: boolean;
  /** failHealthCheck(true) was called (and not undone): `monitor_uri` answers 503. */
  healthFailing: boolean;
  /** Exchanges not yet finished, for timeouts and graceful shutdown. */
  readonly inFlight: InFlight;
  /** Requests in flight per client address; kept across reloads (a reload changes only the limit). */
  readonly clients: ClientConcurrency;
  /** `telemetry.tracing.trust_incoming`: continue (or pass on) any client's `traceparent`, not only trusted proxies'. */
  readonly trustIncoming: boolean;
}

/** The exchanges in flight (SlotList: not a Set, see there). */
export class InFlight extends SlotList<Exchange> {}

/** The listener a request arrived on. */
export interface ListenerInfo {
  readonly scheme: 'http' | 'https';
  readonly port: number;
  /** A TLS listener's client-certificate facts, forwarded as X-SSL-Client-* (listener-tls.ts). */
  readonly tls?: { clientCert(socket: TLSSocket): ClientCertFacts | undefined };
}

/** RFC 9110 §9.2.2 idempotent methods (nginx retries only these unless `non_idempotent`). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** 103 Early Hints passed on per request; more are dropped (an upstream flooding 1xx gets no amplifier). */
const MAX_EARLY_HINTS = 4;
/** Splits a Link field before each `<`, where the next link-value of a comma-separated list begins. */
const LINK_SPLIT = /\s*,\s*(?=<)/;
const EMPTY: ReadonlySet<number> = new Set();
/** Placeholders until a request has its own (one array fewer per request that gets them). */
const NO_HEADERS = Object.freeze([]) as unknown as string[];
const NO_UPSTREAMS: readonly string[] = Object.freeze([]);
const kExchange = Symbol('tiergate.exchange');
type TaggedResponse = ServerResponse & { [kExchange]?: Exchange };

class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
}
class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
}
/** The client sent none of its request body for `client_body_timeout`: its fault, not the upstream's. */
class ClientBodyTimeoutError extends Error {
  override readonly name = 'ClientBodyTimeoutError';
}
/** The client read none of the response for `send_timeout`. */
class ClientSendTimeoutError extends Error {
  override readonly name = 'ClientSendTimeoutError';
}
/** The upstream accepted none of the request body for `timeouts.send` (nginx proxy_send_timeout). */
class UpstreamSendTimeoutError extends Error {
  override readonly name = 'UpstreamSendTimeoutError';
  readonly code = 'TG_UPSTREAM_SEND_TIMEOUT';
}

// Listeners are module functions reading the exchange from the response, so a request costs no closures.
function onResponseDrain(this: TaggedResponse): void {
  this[kExchange]?.drained();
}
function onResponseClose(this: TaggedResponse): void {
  if (!this.writableFinished) this[kExchange]?.clientClosed();
}

/**
 * How often expireAttempts runs (proxy-server.ts): the attempts' timeouts (upstream and client) fire up
 * to this much late.
 */
export const TIMEOUT_SWEEP_MS = 100;

/**
 * Fails every attempt whose deadline has passed: the upstream's deadlines as undici would (the same
 * errors, so the same 504s, retries and passive-health faults); the client's own (client_body_timeout,
 * send_timeout) end the exchange without blaming the server. The proxy keeps these deadlines itself
 * instead of undici's headersTimeout/bodyTimeout: undici arms a timer object per request, and a cleared
 * one stays in its timer list for up to a second, so under load thousands of them outlive the young
 * generation each second; the old generation then grew ~1 MiB/s and its mark-compacts set the p99
 * (loadtest/README.md). A deadline is a number on the attempt, and this one sweep per proxy checks them all.
 */
export function expireAttempts(ctx: ProxyContext, now: number): void {
  ctx.inFlight.forEach((ex) => {
    const a = ex.current;
    if (a !== undefined && a.deadline <= now) a.expire(now);
  });
}

/** Entry point for one client request on one listener. */
export function handleRequest(ctx: ProxyContext, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse): void {
  const ex = new Exchange(ctx, listener, req, res, undefined);
  ex.start();
}

/** What an `Upgrade` request brings: the client socket and the bytes already read after its head. */
export interface UpgradeInfo {
  readonly socket: Duplex;
  readonly head: Buffer;
  /** The client's `Upgrade` value, sent upstream as is. */
  readonly protocol: string;
}

/**
 * Entry point for an `Upgrade` request (node's 'upgrade' event). It goes through the same route, rate
 * limit, sticky cookie, balancer pick and retries as any request; `res` is a ServerResponse bound to
 * the raw socket, so refusals and non-101 upstream answers are ordinary HTTP responses (then the
 * connection closes). On `101` the sockets are joined (tunnel.ts) until either side closes.
 */
export function handleUpgrade(ctx: ProxyContext, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse, up: UpgradeInfo): void {
  const ex = new Exchange(ctx, listener, req, res, up);
  ex.start();
}

/**
 * One client request through its upstream attempts. Retries follow nginx proxy_next_upstream: only
 * before any response byte went to the client, never to a server already tried, within `tries` and
 * `timeout`, only for idempotent methods unless `non_idempotent`, and a request with a body only if
 * none of it has been read yet (bodies are streamed, never buffered, so they cannot be replayed).
 */
export class Exchange {
  readonly ctx: ProxyContext;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly startedAt: number;
  readonly clientAddress: string;
  readonly requestId: string;
  readonly gen: Generation;
  readonly #listener: ListenerInfo;
  /** The client connection's peer (cached on its socket). */
  readonly #peer: PeerInfo;
  readonly #upgrade: UpgradeInfo | undefined;
  #route: CompiledRoute | undefined;
  /** The pool generation this request holds (released when it finishes). */
  #pool: UpstreamPool | undefined;
  /** Server index the request's sticky cookie named (-1: none or unknown). */
  #stickyIndex = -1;
  /** Addresses of every server tried, in order. */
  /** Made at the first dispatch, sized for the one server most requests try. */
  #upstreams: string[] | undefined;
  #upstreamMs = 0;
  bytesSent = 0;
  /** Index in ctx.inFlight, -1 when not in it. */
  slot = -1;
  #closeTunnel: (() => void) | undefined;
  /** 103 responses passed to the client so far. */
  #earlyHints = 0;
  #hasBody = false;
  #headers: string[] = NO_HEADERS;
  /** The request target sent upstream: the raw one or the normalised path routing matched. */
  #target = '';
  #hashKey = '';
  #tried: Set<number> | undefined;
  #firstIndex = -1;
  attempts = 0;
  bodyBytes = 0;
  bodyTooLarge = false;
  /** Set when the client, not the upstream, missed a deadline: the error it ended the attempt with. */
  clientTimeout: ClientBodyTimeoutError | ClientSendTimeoutError | undefined;
  clientGone = false;
  current: Attempt | undefined;
  #status = 0;
  #upstream: string | undefined;
  #error: ErrorCode | undefined;
  #done = false;
  /** This request was counted in ctx.clients (limits.max_concurrent_per_client): #finish releases it. */
  #counted = false;
  /** Set only while an OpenTelemetry SDK is registered (tracing.ts); everything traced hangs off these. */
  #tracer: Tracer | undefined;
  #span: Span | undefined;
  /** Why the last attempt was given up, for the next attempt's span. */
  #retryReason: string | undefined;
  /** The client sent `TE: trailers`: only then are the upstream's trailers passed on (upstream-h2.ts). */
  #trailers = false;
  /** The response is gzip-compressed on its way (compression.ts): the body goes through this stream. */
  #gzip: Gzip | undefined;
  /** The client's side did not take the last compressed output at once: the upstream waits for its 'drain'. */
  #clientFull = false;

  constructor(ctx: ProxyContext, listener: ListenerInfo, req: IncomingMessage, res: ServerResponse, upgrade: UpgradeInfo | undefined) {
    this.ctx = ctx;
    const gen = ctx.gen;
    this.gen = gen;
    this.#listener = listener;
    this.#upgrade = upgrade;
    this.req = req;
    this.res = res;
    this.startedAt = ctx.now();
    this.requestId = requestIdOf(req.headers['x-request-id']);
    const peer = peerOf(req.socket, gen.trusted);
    this.#peer = peer;
    this.clientAddress = peer.trusted
      ? forwardedClient(
          peer.address,
          gen.trusted,
          gen.recursive,
          headerString(req.headers['x-forwarded-for']),
          headerString(req.headers['x-real-ip']),
        )
      : peer.address;
  }

  get maxBodySize(): number {
    return this.#route?.maxBodySize ?? 0;
  }

  start(): void {
    const { req, res, ctx } = this;
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    this.#hasBody = te !== undefined || (cl !== undefined && cl !== '0') || h2HasBody(req);
    (res as TaggedResponse)[kExchange] = this;
    res.on('close', onResponseClose);
    ctx.inFlight.add(this);
    const tracer = activeTracer();
    if (tracer) this.#startTrace(tracer);
    // While draining, requests on open keep-alive connections are still served (with `Connection: close`),
    // except one pipelined behind a response that is still being written (node queues its `res` without a
    // socket): that response will say `close`, and RFC 9112 §9.6 forbids processing requests after it.
    if (ctx.draining && res.socket === null) {
      this.fail('TG_PROXY_SHUTTING_DOWN', true);
      return;
    }
    const limiter = this.gen.limiter;
    if (limiter) {
      const waitMs = limiter.take(this.clientAddress, ctx.now());
      if (waitMs > 0) {
        this.fail('TG_PROXY_RATE_LIMITED', this.#hasBody, ['retry-after', String(Math.ceil(waitMs / 1000))]);
        return;
      }
    }
    const maxConcurrent = this.gen.maxConcurrentPerClient;
    if (maxConcurrent > 0) {
      if (!ctx.clients.acquire(this.clientAddress, maxConcurrent, ctx.now())) {
        this.fail('TG_PROXY_CONCURRENCY_LIMITED', this.#hasBody);
        return;
      }
      this.#counted = true;
    }
    const url = req.url ?? '';
    // Routes match the normalised path, so the route chosen and the path the upstream resolves agree.
    const target = parseTarget(url);
    if (target === undefined || refusedRequest(req)) {
      this.fail('TG_PROXY_BAD_REQUEST', true);
      return;
    }
    const route = this.gen.routes.match(req.headers.host, target.path);
    if (!route) {
      this.fail('TG_PROXY_NO_ROUTE', this.#hasBody);
      return;
    }
    if (route.redirect !== undefined && (route.pool === undefined || route.redirect.scheme !== this.#scheme())) {
      this.#redirect(route.route, route.redirect, url);
      return;
    }
    if (route.pool === undefined) return; // a prefix redirect (above): never here
    this.#route = route;
    const sent =
      route.rewrite !== undefined ? route.rewrite(target) : target.rawSafe && route.forwardPath === 'raw' ? url : target.normalized;
    if (sent === undefined) {
      this.fail('TG_PROXY_BAD_REQUEST', true);
      return;
    }
    this.#target = sent;
    if (this.#span) setRoute(this.#span, req.method ?? '', route.route, route.pool.name);
    if (route.access !== undefined && !route.access(this.clientAddress)) {
      this.fail('TG_PROXY_FORBIDDEN', this.#hasBody);
      return;
    }
    if (route.maxBodySize > 0 && cl !== undefined && Number(cl) > route.maxBodySize) {
      this.fail('TG_PROXY_BODY_TOO_LARGE', true);
      return;
    }
    const pool = route.pool;
    // undici would try RFC 8441's extended CONNECT towards an h2 server, and count its refusal against the server.
    if (this.#upgrade !== undefined && speaksH2(pool.config.protocol)) {
      this.fail('TG_PROXY_UPGRADE_UNSUPPORTED', true);
      return;
    }
    pool.acquire();
    this.#pool = pool;
    if (pool.hashKey) this.#hashKey = pool.hashKey(new RequestKeyVars(req, this.clientAddress));
    const index = this.#firstPick(pool);
    if (index < 0) {
      this.fail('TG_PROXY_NO_UPSTREAM', this.#hasBody);
      return;
    }
    const peer = this.#peer.address;
    const peerTrusted = this.#peer.trusted;
    this.#headers = upstreamRequestHeaders(req.rawHeaders, route.rules, {
      clientAddress: this.clientAddress,
      peerAddress: peer,
      peerTrusted,
      scheme: this.#listener.scheme,
      listenerPort: this.#listener.port,
      requestId: this.requestId,
      clientCert: this.#listener.tls?.clientCert(req.socket as TLSSocket),
      keepTraceContext: this.#tracer === undefined && (ctx.trustIncoming || peerTrusted),
    });
    pool.sticky?.strip(this.#headers);
    this.#trailers = acceptsTrailers(req);
    // `te: trailers`, the one TE HTTP/2 allows (RFC 9113 §8.2.2), tells a gRPC server its trailers will arrive.
    if (this.#trailers && speaksH2(pool.config.protocol)) this.#headers.push('te', 'trailers');
    // Node calls this handler for `Expect: 100-continue` without answering it: nginx-like, the proxy
    // says 100 once it has decided to read the body (after the route, size and server checks above).
    if (this.#hasBody && (req.headers.expect ?? '').toLowerCase() === '100-continue') res.writeContinue();
    res.on('drain', onResponseDrain);
    // A socket handed over by 'upgrade' has no server wiring its 'drain' to the response.
    this.#upgrade?.socket.on('drain', () => this.current?.resume());
    this.#dispatch(index);
  }

  /** The SERVER span; the incoming trace context is continued only from a trusted peer or with trust_incoming. */
  #startTrace(tracer: Tracer): void {
    const { req } = this;
    this.#tracer = tracer;
    // Asked only of a request that brings a trace context to continue.
    const trusted = req.headers.traceparent !== undefined && (this.ctx.trustIncoming || this.#peer.trusted);
    const facts = {
      method: req.method ?? '',
      url: req.url ?? '',
      scheme: this.#listener.scheme,
      clientAddress: this.clientAddress,
      // OpenTelemetry's network.protocol.version spells HTTP/2 `2`.
      protocolVersion: req.httpVersionMajor === 2 ? '2' : req.httpVersion,
      serverPort: this.#listener.port,
    };
    this.#span = startServerSpan(tracer, facts, req.headers, trusted);
  }

  /** The sticky cookie's server when it is usable, else the balancer's choice. */
  #firstPick(pool: UpstreamPool): number {
    const now = this.ctx.now();
    if (pool.sticky) {
      this.#stickyIndex = pool.sticky.serverOf(this.req.headers.cookie);
      const i = pool.pickSticky(this.#stickyIndex, this.clientAddress, this.#hashKey, now);
      if (i >= 0) return i;
    }
    return pool.balancer.pick({ clientAddress: this.clientAddress, hashKey: this.#hashKey, tried: EMPTY }, now);
  }

  #dispatch(index: number): void {
    const pool = this.#route!.pool;
    this.attempts++;
    if (this.#firstIndex < 0) this.#firstIndex = index;
    this.#tried?.add(index);
    const attempt = new Attempt(this, index, pool, this.ctx.now());
    this.current = attempt;
    if (this.#upstreams === undefined) this.#upstreams = [attempt.upstream];
    else this.#upstreams.push(attempt.upstream);
    let headers: readonly string[] = this.#headers;
    if (this.#span) {
      // Undefined under an unsampled SERVER span, whose context then goes upstream.
      attempt.span = startAttemptSpan(this.#tracer!, this.#span, {
        method: this.req.method ?? '',
        upstream: attempt.upstream,
        target: this.#target,
        attempt: this.attempts,
        pool: pool.name,
        algorithm: pool.balancer.algorithm,
        retryReason: this.#retryReason,
      });
      headers = withTraceContext(headers, attempt.span ?? this.#span);
    }
    // `servername`: undici's Request takes it (its types do not list it); see Upstream.servername.
    const opts: Dispatcher.DispatchOptions & { servername: string | undefined } = {
      method: this.req.method as Dispatcher.HttpMethod,
      path: this.#target,
      headers: headers as string[],
      body: this.#hasBody ? this.req : null,
      reset: pool.reset,
      upgrade: this.#upgrade?.protocol ?? null,
      servername: pool.upstreams[index]!.servername,
    };
    try {
      pool.upstreams[index]!.dispatcher.dispatch(opts, attempt);
    } catch (err) {
      this.onError(attempt, err as Error);
    }
  }

  /**
   * The next server for a failure meeting `bit`, or -1 when the retry policy says no. The pick is
   * made before the failed response is thrown away, so with no server left it is passed through.
   */
  #nextServer(bit: number, now: number): number {
    const pool = this.#route!.pool;
    const on = pool.nextUpstream;
    if ((on & bit) === 0 || this.clientGone || this.res.headersSent) return -1;
    if ((on & NEXT.non_idempotent) === 0 && !IDEMPOTENT.has(this.req.method!)) return -1;
    if (this.attempts >= pool.tries) return -1;
    if (pool.triesTimeoutMs > 0 && now - this.startedAt >= pool.triesTimeoutMs) return -1;
    if (this.#hasBody && this.req.readableDidRead) return -1;
    this.#tried ??= new Set([this.#firstIndex]);
    return pool.balancer.pick({ clientAddress: this.clientAddress, hashKey: this.#hashKey, tried: this.#tried }, now);
  }

  onHeaders(a: Attempt, status: number, statusText: string | undefined, raw: Buffer[]): void {
    if (a !== this.current) return;
    if (status < 200) {
      this.#interim(status, raw);
      return;
    }
    a.status = status;
    const bit = statusBit(status);
    if (bit !== 0 && (this.#route!.pool.nextUpstream & bit) !== 0) {
      a.failed = true;
      const next = this.#nextServer(bit, this.ctx.now());
      if (next >= 0) {
        a.retryTo = next;
        a.controller!.abort(new Error(`retrying after status ${status}`));
        return;
      }
    }
    this.#status = status;
    this.#upstream = a.upstream;
    const headers = this.#clientHeaders(a, raw);
    if (this.#trailers && this.req.httpVersion === '1.1') {
      const announce = trailerAnnouncement(raw, status, this.req.method);
      if (announce !== undefined) headers.push('Trailer', announce);
    }
    // Draining: tell keep-alive clients to reconnect, through the director, to a node that is not leaving.
    if (this.ctx.draining) headers.push('connection', 'close');
    const gzip = this.gen.gzip;
    if (gzip !== undefined && gzipResponse(gzip, this.req, status, headers)) this.#startGzip(gzip);
    if (this.req.httpVersionMajor === 2 && isTrailersOnly(raw)) deferHead(this.res, status, headers);
    else if (statusText) this.res.writeHead(status, statusText, headers);
    else this.res.writeHead(status, headers);
  }

  /**
   * An interim response (undici passes every 1xx but 100 and 101 on; it drops the connection on an
   * unasked-for 100, and a 101 only comes to an upgrade). A 103's `Link` fields go to the client as early
   * hints (RFC 8297), at most MAX_EARLY_HINTS of them, and only to an HTTP/1.1 or h2 client (RFC 9110 §15.2: no
   * 1xx to HTTP/1.0); every other 1xx is dropped. None of them changes the exchange: the final response
   * is still awaited within the same `response_headers` deadline (a flood of 1xx cannot extend it).
   */
  #interim(status: number, raw: Buffer[]): void {
    const { req, res } = this;
    if (status !== 103 || this.#earlyHints >= MAX_EARLY_HINTS || req.httpVersion === '1.0' || res.headersSent) return;
    const links: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toString('latin1').toLowerCase() !== 'link') continue;
      // One field may carry several comma-separated links; node validates each link-value on its own.
      for (const link of raw[i + 1]!.toString('latin1').split(LINK_SPLIT)) if (link !== '') links.push(link);
    }
    if (links.length === 0) return;
    this.#earlyHints++;
    try {
      res.writeEarlyHints({ link: links });
    } catch {
      // A Link value node refuses (ERR_INVALID_ARG_VALUE) loses the hint, not the request.
    }
  }

  /** The body from here on goes through gzip; its output to the client, counted as what was sent. */
  #startGzip(settings: GzipSettings): void {
    const gz = gzipStream(settings);
    this.#gzip = gz;
    gz.on('data', (out: Buffer) => {
      this.bytesSent += out.length;
      if (!this.res.write(out)) this.#clientFull = true;
    });
    // zlib took what it had queued: the upstream may go on (unless the client is the one behind).
    gz.on('drain', () => {
      if (!this.#clientFull) this.current?.resume();
    });
    // Not expected from compressing; handled as a client gone (the response's 'close' ends the exchange).
    gz.on('error', () => this.res.destroy());
  }

  /**
   * A chunk of the upstream's body for the client: false when it should wait for a 'drain' (the client's, or
   * zlib's when compressing).
   */
  writeBody(chunk: Buffer): boolean {
    const gz = this.#gzip;
    if (gz === undefined) {
      this.bytesSent += chunk.length;
      return this.res.write(chunk);
    }
    return gz.write(chunk) && !this.#clientFull;
  }

  /** The client's connection took what it was sent. */
  drained(): void {
    this.#clientFull = false;
    this.current?.resume();
  }

  /** The upstream's response headers for the client (with X-Request-Id and the response rules), plus a sticky cookie when one is due. */
  #clientHeaders(a: Attempt, raw: Buffer[]): string[] {
    const headers = clientResponseHeaders(raw, this.#route!.rules, this.requestId);
    const sticky = this.#route!.pool.sticky;
    if (sticky && a.index !== this.#stickyIndex) headers.push('Set-Cookie', sticky.setCookie(a.index));
    return headers;
  }

  /** `101` from the upstream: answer the client with it and join the two sockets until either closes. */
  onUpgrade(a: Attempt, status: number, statusText: string, raw: Buffer[], upstream: Duplex): void {
    const up = this.#upgrade;
    if (a !== this.current || !up || this.clientGone) {
      upstream.destroy();
      this.#release(a, false, 'client gone');
      this.#finish();
      return;
    }
    a.status = status;
    this.#status = status;
    this.#upstream = a.upstream;
    const headers = this.#clientHeaders(a, raw);
    let protocol = up.protocol;
    for (let i = 0; i < raw.length; i += 2)
      if (raw[i]!.toString('latin1').toLowerCase() === 'upgrade') protocol = raw[i + 1]!.toString('latin1');
    let head = `HTTP/1.1 ${status} ${statusText || 'Switching Protocols'}\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    const client = up.socket;
    const sentBefore = (client as { bytesWritten?: number }).bytesWritten ?? 0;
    client.write(`${head}\r\n`, 'latin1');
    if (up.head.length > 0) upstream.write(up.head);
    this.res.removeListener('close', onResponseClose);
    (this.res as TaggedResponse)[kExchange] = undefined;
    this.#closeTunnel = joinSockets(client, upstream, this.#route!.pool.config.timeouts.idle, () => {
      this.bytesSent = ((client as { bytesWritten?: number }).bytesWritten ?? 0) - sentBefore;
      this.#release(a, false, undefined);
      this.#finish();
    });
  }

  /** Forced shutdown: cut an open tunnel. */
  destroyTunnel(): void {
    this.#closeTunnel?.();
  }

  onEnd(a: Attempt, rawTrailers: Buffer[]): void {
    if (a !== this.current) return;
    const gz = this.#gzip;
    if (gz !== undefined) {
      // The upstream is done with; the response ends once zlib has given the last of it.
      const trailers = this.#trailers && rawTrailers.length > 0 ? trailersFor(rawTrailers, this.req.httpVersionMajor === 2) : undefined;
      this.#release(a, a.failed, undefined, a.failed ? 'TG_PROXY_UPSTREAM_STATUS' : undefined);
      // The attempt is over: none of its deadlines may fire while the exchange waits for zlib.
      a.deadline = Number.POSITIVE_INFINITY;
      gz.once('end', () => {
        if (trailers) this.res.addTrailers(trailers);
        this.res.end();
        this.#finish();
      });
      gz.end();
      return;
    }
    if (this.#trailers && rawTrailers.length > 0) this.res.addTrailers(trailersFor(rawTrailers, this.req.httpVersionMajor === 2));
    this.res.end();
    this.#release(a, a.failed, undefined, a.failed ? 'TG_PROXY_UPSTREAM_STATUS' : undefined);
    this.#finish();
  }

  onError(a: Attempt, err: Error): void {
    if (a.retryTo >= 0) {
      this.#retryReason = `http_${a.status}`;
      this.#release(a, true, `status ${a.status}`, 'TG_PROXY_UPSTREAM_STATUS');
      this.#dispatch(a.retryTo);
      return;
    }
    if (a !== this.current) return;
    if (this.clientTimeout !== undefined && err === this.clientTimeout) {
      this.#clientTimedOut(a, this.clientTimeout);
      return;
    }
    if (this.clientGone || err instanceof ClientGoneError || (this.#hasBody && this.req.destroyed && !this.req.complete)) {
      this.#release(a, false, 'client gone');
      this.#finish();
      return;
    }
    if (this.bodyTooLarge) {
      this.#release(a, false, 'body too large', 'TG_PROXY_BODY_TOO_LARGE');
      this.fail('TG_PROXY_BODY_TOO_LARGE', true);
      return;
    }
    const kind = classifyUpstreamError(err);
    this.#release(a, kind.serverFault, (err as { code?: string }).code ?? err.name, kind.code);
    if (!kind.serverFault) {
      // undici refused the request itself (400, nginx's answer to a request it cannot forward): no retry either.
      this.#error = kind.code;
      if (this.res.headersSent) {
        this.res.destroy();
        this.#finish();
      } else this.fail(kind.code, true);
      return;
    }
    this.#error = kind.code;
    this.#retryReason = kind.code;
    if (this.res.headersSent) {
      this.res.destroy();
      this.#finish();
      return;
    }
    const next = this.#nextServer(kind.bit, this.ctx.now());
    if (next >= 0) this.#dispatch(next);
    else this.fail(kind.code, this.#hasBody && !this.req.complete);
  }

  /**
   * The client missed a deadline: the attempt is released as no fault of the server. A stalled body gets
   * `408` and the connection closes (nginx client_body_timeout); a client that stopped reading is cut
   * (nginx send_timeout: the response has started, so closing is the only signal left).
   */
  #clientTimedOut(a: Attempt, err: ClientBodyTimeoutError | ClientSendTimeoutError): void {
    const body = err instanceof ClientBodyTimeoutError;
    this.#release(a, false, body ? 'client body timeout' : 'send timeout', 'TG_PROXY_CLIENT_TIMEOUT');
    if (body) {
      this.fail('TG_PROXY_CLIENT_TIMEOUT', true);
      return;
    }
    this.#error = 'TG_PROXY_CLIENT_TIMEOUT';
    this.res.destroy();
    this.#finish();
  }

  /** The client's connection closed before the response was complete. */
  clientClosed(): void {
    if (this.clientGone || this.#closeTunnel) return;
    this.clientGone = true;
    // Only the compressed tail was left (the upstream is done with, onEnd ended zlib's input).
    if (this.#gzip?.writableEnded) {
      this.#finish();
      return;
    }
    const c = this.current?.controller;
    if (c) c.abort(new ClientGoneError('client closed the connection'));
    else if (!this.current) this.#finish();
  }

  /** `code`: the attempt's failure as a TG_* code, for its span. */
  #release(a: Attempt, failed: boolean, error: string | undefined, code?: ErrorCode): void {
    if (a.released) return;
    a.released = true;
    if (a.span) endAttemptSpan(a.span, a.status, code);
    const now = this.ctx.now();
    // A tunnel's latency is its time to the 101, not its lifetime (ewma would shun WebSocket servers).
    const latencyMs = (a.upgradedAt ?? now) - a.startedAt;
    this.#route!.pool.balancer.release(a.index, { failed, latencyMs }, now);
    this.#upstreamMs += now - a.startedAt;
    if (attemptChannel.hasSubscribers) {
      const event: AttemptEvent = {
        requestId: this.requestId,
        pool: this.#route!.pool.name,
        upstream: a.upstream,
        attempt: this.attempts,
        status: a.status,
        error,
        failed,
        durationMs: now - a.startedAt,
      };
      attemptChannel.publish(event);
    }
  }

  /**
   * The scheme the client used: the listener's, or, from a trusted peer (a TLS terminator in front), its
   * X-Forwarded-Proto when that says http or https (HAProxy users write `unless { ssl_fc }` or test the header).
   */
  #scheme(): 'http' | 'https' {
    if (this.#peer.trusted) {
      const proto = (headerString(this.req.headers['x-forwarded-proto']) ?? '').split(',')[0]!.trim().toLowerCase();
      if (proto === 'http' || proto === 'https') return proto;
    }
    return this.#listener.scheme;
  }

  /** Answers with the route's redirect; the request's body, if any, is not read (the connection then closes). */
  #redirect(route: string, redirect: Redirect, target: string): void {
    if (this.#span) setRoute(this.#span, this.req.method ?? '', route, '');
    // HTTP/1.0 may come without a Host: the address the client reached stands in (nginx would use server_name).
    const host = this.req.headers.host ?? this.req.headers[':authority'];
    const local = this.req.socket.localAddress ?? '';
    const name = typeof host === 'string' && host !== '' ? stripPort(host) : local.includes(':') ? `[${local}]` : local;
    const closing = this.#hasBody || this.ctx.draining || this.#upgrade !== undefined;
    this.bytesSent += sendRedirect(this.res, redirect.status, redirect.location(target, name), closing, ['X-Request-Id', this.requestId]);
    this.#status = redirect.status;
    this.#finish();
  }

  /** Answers with the error of `code`; `close` ends the connection after it (so does draining). */
  fail(code: ErrorCode, close: boolean, extra: readonly string[] = []): void {
    this.#error = code;
    const closing = close || this.ctx.draining || this.#upgrade !== undefined;
    this.bytesSent += sendError(this.res, code, closing, ['X-Request-Id', this.requestId, ...extra], this.gen.errorPages);
    this.#status = this.res.statusCode;
    this.#finish();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#gzip?.destroy();
    this.ctx.inFlight.delete(this);
    if (this.#counted) this.ctx.clients.release(this.clientAddress);
    this.#pool?.release();
    if (this.#span) endServerSpan(this.#span, this.#status, this.#error, this.clientGone);
    const log = this.gen.accessLog;
    if (!requestChannel.hasSubscribers && !log) return;
    const url = this.req.url ?? '';
    const q = url.indexOf('?');
    const event: RequestEvent = {
      requestId: this.requestId,
      time: this.startedAt,
      method: this.req.method ?? '',
      url,
      path: q < 0 ? url : url.slice(0, q),
      httpVersion: this.req.httpVersion,
      host: this.req.headers.host,
      clientAddress: this.clientAddress,
      peerAddress: this.#peer.address,
      userAgent: this.req.headers['user-agent'],
      referer: this.req.headers.referer,
      pool: this.#route?.pool.name,
      upstream: this.#upstream,
      upstreams: this.#upstreams ?? NO_UPSTREAMS,
      status: this.#status,
      bytesSent: this.bytesSent,
      bytesReceived: this.bodyBytes,
      attempts: this.attempts,
      upstreamDurationMs: this.#upstreamMs,
      durationMs: this.ctx.now() - this.startedAt,
      error: this.#error,
      aborted: this.clientGone,
      upgraded: this.#closeTunnel !== undefined,
    };
    requestChannel.publish(event);
    log?.(event);
  }
}

/**
 * An HTTP/2 request has a body when its HEADERS frame did not end the stream: the length is optional in h2
 * (RFC 9113 §8.1), so a body without `content-length` goes upstream chunked.
 */
function h2HasBody(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2 && !(req as unknown as Http2ServerRequest).stream.endAfterHeaders;
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** What an attempt's deadline waits for (Attempt#wait). */
const WAIT_NONE = 0;
/** The request is being sent: on the client's body, or on the upstream taking it (expire() tells which). */
const WAIT_SENDING = 1;
/** The request is sent: on the upstream's response headers. */
const WAIT_HEADERS = 2;
/** Between two chunks of the response body. */
const WAIT_BODY = 3;
/** The client's backpressure paused the upstream: on the client reading (send_timeout). */
const WAIT_CLIENT = 4;

/** Who holds up a request being sent, as far as expire() knows. */
const HELD_UNKNOWN = 0;
const HELD_BY_CLIENT = 1;
const HELD_BY_UPSTREAM = 2;

/** One attempt against one server: the undici handler, forwarding to its exchange. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly ex: Exchange;
  readonly index: number;
  readonly upstream: string;
  readonly startedAt: number;
  controller: Dispatcher.DispatchController | undefined;
  /** Set when a retryable status was seen and the next server already picked. */
  retryTo = -1;
  /** The response status is one `retries.on` lists (counts as a failure, nginx-like). */
  failed = false;
  released = false;
  /** The upstream's response status, 0 before (or without) final response headers. */
  status = 0;
  /** `now()` when a 101 came (the attempt then lasts as long as the tunnel). */
  upgradedAt: number | undefined;
  /** This attempt's CLIENT span, when the request is traced and sampled. */
  span: Span | undefined;
  /**
   * performance.now() by which the side awaited must make progress (expireAttempts). While the request is
   * sent: `client_body_timeout` when the client's body is awaited, `timeouts.send` when the upstream does not
   * take it; from the request's last byte to the response headers: `response_headers` (1xx do not extend
   * it); then `idle` between response chunks, or `send_timeout` while the client's backpressure pauses the
   * upstream. Infinity when nothing is awaited (not yet dispatched, upgraded) or the timeout is 0.
   */
  deadline = Number.POSITIVE_INFINITY;
  #wait = WAIT_NONE;
  /** While sending: performance.now() of the last body chunk written upstream (or of the start). */
  #progressAt = 0;
  /** While sending: who expire() last found holding the request up since #progressAt. */
  #held = HELD_UNKNOWN;
  readonly #headersMs: number;
  readonly #idleMs: number;
  readonly #upstreamSendMs: number;
  readonly #clientBodyMs: number;
  readonly #clientSendMs: number;

  constructor(ex: Exchange, index: number, pool: UpstreamPool, startedAt: number) {
    this.ex = ex;
    this.index = index;
    this.upstream = pool.upstreams[index]!.address;
    this.startedAt = startedAt;
    this.#headersMs = pool.headersTimeoutMs;
    this.#idleMs = pool.idleTimeoutMs;
    this.#upstreamSendMs = pool.sendTimeoutMs;
    this.#clientBodyMs = ex.gen.clientBodyTimeoutMs;
    this.#clientSendMs = ex.gen.sendTimeoutMs;
  }

  #arm(wait: number, ms: number): void {
    this.#wait = wait;
    this.deadline = ms > 0 ? performance.now() + ms : Number.POSITIVE_INFINITY;
  }

  /** A body chunk went upstream (or sending began): both sides made progress, nobody is blamed yet. */
  #sending(): void {
    const now = performance.now();
    this.#wait = WAIT_SENDING;
    this.#progressAt = now;
    this.#held = HELD_UNKNOWN;
    const first = minTimeout(this.#clientBodyMs, this.#upstreamSendMs);
    this.deadline = first > 0 ? now + first : Number.POSITIVE_INFINITY;
  }

  /** The deadline passed: end the attempt with the error of whoever missed it. */
  expire(now: number): void {
    const c = this.controller;
    switch (this.#wait) {
      case WAIT_SENDING: {
        // undici pauses the client's body while the upstream socket is full (client-h1 writeStream), so a
        // paused body waits on the upstream, a flowing one on the client. The clock restarts when the
        // blame moves (each side gets its whole timeout, as nginx's two timers would).
        const held = this.ex.req.isPaused() ? HELD_BY_UPSTREAM : HELD_BY_CLIENT;
        if (held !== this.#held) {
          const ms = held === HELD_BY_UPSTREAM ? this.#upstreamSendMs : this.#clientBodyMs;
          const from = this.#held === HELD_UNKNOWN ? this.#progressAt : now;
          this.#held = held;
          this.deadline = ms > 0 ? from + ms : Number.POSITIVE_INFINITY;
          if (this.deadline > now) return;
        }
        this.deadline = Number.POSITIVE_INFINITY;
        if (held === HELD_BY_UPSTREAM) c?.abort(new UpstreamSendTimeoutError('the upstream took no request body for timeouts.send'));
        else this.#clientTimeout(new ClientBodyTimeoutError('the client sent no request body for client_body_timeout'));
        return;
      }
      case WAIT_CLIENT:
        this.deadline = Number.POSITIVE_INFINITY;
        this.#clientTimeout(new ClientSendTimeoutError('the client read nothing for send_timeout'));
        return;
      default:
        this.deadline = Number.POSITIVE_INFINITY;
        c?.abort(this.#wait === WAIT_BODY ? new errors.BodyTimeoutError() : new errors.HeadersTimeoutError());
    }
  }

  #clientTimeout(err: ClientBodyTimeoutError | ClientSendTimeoutError): void {
    this.ex.clientTimeout = err;
    this.controller?.abort(err);
  }

  /** The client drained what it was sent: the upstream may go on, and is timed again. */
  resume(): void {
    const c = this.controller;
    if (!c?.paused) return;
    this.#arm(WAIT_BODY, this.#idleMs);
    c.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.ex.clientGone) controller.abort(new ClientGoneError('client closed the connection'));
    else this.#sending();
  }

  onRequestSent(): void {
    // The upstream is timed from the request's last byte, not its first (a slow client is not its fault).
    if (this.#wait === WAIT_SENDING) this.#arm(WAIT_HEADERS, this.#headersMs);
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, _headers: unknown, statusText?: string): void {
    // An interim 1xx leaves the final headers to wait for, within the deadline already running.
    if (status >= 200) this.#arm(WAIT_BODY, this.#idleMs);
    this.ex.onHeaders(this, status, statusText, rawHeaderList(controller.rawHeaders));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.retryTo >= 0) return;
    if (this.ex.writeBody(chunk)) this.#arm(WAIT_BODY, this.#idleMs);
    else {
      // Waiting on the client, not the upstream: no idle timeout until it drains (undici's rule too), but
      // send_timeout, so a client that stops reading cannot hold the upstream connection for ever.
      this.#arm(WAIT_CLIENT, this.#clientSendMs);
      controller.pause();
    }
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, status: number, _headers: unknown, socket: Duplex): void {
    this.#arm(WAIT_NONE, 0); // the tunnel has its own idle timeout (tunnel.ts)
    this.upgradedAt = this.ex.ctx.now();
    this.ex.onUpgrade(this, status, '', rawHeaderList(controller.rawHeaders), socket);
  }

  onResponseEnd(controller: Dispatcher.DispatchController): void {
    this.ex.onEnd(this, rawHeaderList(controller.rawTrailers));
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.ex.onError(this, err);
  }

  onBodySent(chunk: Buffer): void {
    const ex = this.ex;
    if (this.#wait === WAIT_SENDING) this.#sending();
    ex.bodyBytes += chunk.length;
    const max = ex.maxBodySize;
    if (max > 0 && ex.bodyBytes > max && !ex.bodyTooLarge) {
      ex.bodyTooLarge = true;
      this.controller?.abort(new BodyTooLargeError('request body exceeds max_body_size'));
    }
  }
}

/** The smaller of two timeouts, 0 meaning none. */
function minTimeout(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

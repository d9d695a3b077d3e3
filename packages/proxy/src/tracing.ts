/**
 * OpenTelemetry spans of the proxy (docs/telemetry.md, "Proxy"): one SERVER span per client request and one
 * CLIENT span per upstream attempt, W3C trace context sent upstream from the attempt's span. Only the API is
 * used; the SDK is whatever `@tiergate/telemetry` registered in this process, if anything.
 *
 * Cost with tracing off: `activeTracer()` is the only call a request makes (a global lookup and a property
 * read); everything else hangs off the span it returns, so no attribute, context or header is built.
 *
 * Names and attributes are the stable HTTP semantic conventions (server and client spans; the attribute names are
 * @opentelemetry/semantic-conventions' names, copied in semconv.ts): SERVER `{method} {http.route}` (`{method}` until a route
 * matched), CLIENT `{method}`, a non-standard method reported as `_OTHER` with the name's method `HTTP`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  type Context,
  INVALID_SPANID,
  INVALID_TRACEID,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from './semconv.ts';

/** The tracer name (the package name, per docs/telemetry.md). */
export const TRACER_NAME = '@tiergate/proxy';

/** Methods the HTTP semantic conventions know; any other is reported as `_OTHER`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
/** The span name's `{method}` for a method the conventions do not know (reported as `_OTHER`). */
const OTHER_METHOD_NAME = 'HTTP';
const SERVER_SPAN_OPTIONS = { kind: SpanKind.SERVER } as const;
const CLIENT_SPAN_OPTIONS = { kind: SpanKind.CLIENT } as const;
/** Upstreams are plain HTTP/1.1 through undici (no TLS, no h2 to upstreams). */
const UPSTREAM_PROTOCOL_VERSION = '1.1';

type DelegatingProvider = TracerProvider & { getDelegateTracer?(name: string): Tracer | undefined };

let cachedProvider: TracerProvider | undefined;
let cachedTracer: Tracer | undefined;

/**
 * The proxy's tracer when an SDK is registered, else undefined. The API always hands out a proxy provider
 * whose `getDelegateTracer` answers undefined until an SDK registers, which is how "off" is told apart
 * without starting a span. Checked per request rather than once at module load: the API's module-level
 * ProxyTracer keeps the first SDK's tracer forever, so a process that stops and starts telemetry again
 * (tests do) would keep feeding a shut-down provider. The tracer found is cached per provider object: the
 * API replaces that object when an SDK unregisters, and refuses a second registration on the same one.
 */
export function activeTracer(): Tracer | undefined {
  const provider = trace.getTracerProvider() as DelegatingProvider;
  if (provider === cachedProvider) return cachedTracer;
  const tracer = provider.getDelegateTracer ? provider.getDelegateTracer(TRACER_NAME) : provider.getTracer(TRACER_NAME);
  if (tracer) {
    cachedProvider = provider;
    cachedTracer = tracer;
  }
  return tracer;
}

/** What the SERVER span records about the request (set once it is known to record). */
export interface ServerSpanFacts {
  readonly method: string;
  readonly url: string;
  readonly scheme: 'http' | 'https';
  readonly clientAddress: string;
  /** The listener's port: `server.port` when the Host header names none and none is implied (never, for http/https). */
  readonly serverPort: number;
  /** `req.httpVersion`: `1.1`, `1.0`. */
  readonly protocolVersion: string;
}

/**
 * Starts the SERVER span of one client request. `trustedParent`: the request's `traceparent`/`tracestate`
 * are continued (the peer is a trusted proxy, or `tracing.trust_incoming`); otherwise the span is a new root
 * and the incoming trace context is ignored (it is also never forwarded: see forward-headers.ts).
 *
 * The attributes are set after the start, and only on a recording span: the sampler tiergate configures
 * (parent-based trace-id ratio) does not read them, and at a low ratio building and sanitizing them for every
 * request that is then dropped was a third of what tracing cost (loadtest/tracing-bench.ts).
 */
export function startServerSpan(tracer: Tracer, facts: ServerSpanFacts, headers: IncomingHttpHeaders, trustedParent: boolean): Span {
  const parent = trustedParent && headers.traceparent !== undefined ? propagation.extract(ROOT_CONTEXT, headers) : ROOT_CONTEXT;
  const known = KNOWN_METHODS.has(facts.method);
  // `{method}` until setRoute knows the route.
  const span = tracer.startSpan(known ? facts.method : OTHER_METHOD_NAME, SERVER_SPAN_OPTIONS, parent);
  if (span.isRecording()) setServerAttributes(span, facts, headers, known);
  return span;
}

/** One setAttribute per fact: no attributes object is built only to be copied into the span. */
function setServerAttributes(span: Span, facts: ServerSpanFacts, headers: IncomingHttpHeaders, knownMethod: boolean): void {
  const q = facts.url.indexOf('?');
  span.setAttribute(ATTR_HTTP_REQUEST_METHOD, knownMethod ? facts.method : '_OTHER');
  // Without the query (no url.query either): it may hold secrets.
  span.setAttribute(ATTR_URL_PATH, q < 0 ? facts.url : facts.url.slice(0, q));
  span.setAttribute(ATTR_URL_SCHEME, facts.scheme);
  span.setAttribute(ATTR_CLIENT_ADDRESS, facts.clientAddress);
  span.setAttribute(ATTR_NETWORK_PROTOCOL_VERSION, facts.protocolVersion);
  setServerAuthority(span, headers.host, facts.scheme);
  const userAgent = headers['user-agent'];
  if (userAgent !== undefined) span.setAttribute(ATTR_USER_AGENT_ORIGINAL, userAgent);
  if (!knownMethod) span.setAttribute(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, facts.method);
}

/**
 * `server.address` and `server.port` as the HTTP server conventions take them: the name the client addressed, from
 * the Host header (not the socket's local address, which behind a director or NAT says nothing the client used),
 * and its port, or the scheme's default port when Host names none (RFC 9110 §7.2). No Host (HTTP/1.0): neither.
 * X-Forwarded-Host and Forwarded are not read: any client can send them.
 */
function setServerAuthority(span: Span, host: string | undefined, scheme: 'http' | 'https'): void {
  if (!host) return;
  // `[v6]:port`: the port follows the bracket; otherwise the first colon (a name or IPv4 has none inside).
  const close = host.charCodeAt(0) === 91 ? host.indexOf(']') : -1;
  const colon = host.indexOf(':', close + 1);
  const name = colon < 0 ? host : host.slice(0, colon);
  const port = colon < 0 ? Number.NaN : Number(host.slice(colon + 1));
  span.setAttribute(ATTR_SERVER_ADDRESS, close > 0 ? name.slice(1, close) : name);
  span.setAttribute(ATTR_SERVER_PORT, Number.isInteger(port) && port > 0 && port < 65536 ? port : scheme === 'https' ? 443 : 80);
}

/**
 * Route facts known once the request is matched, and the SERVER span's final name `{method} {http.route}`; a no-op
 * on a span that is not recording. `method`: the request's, as startServerSpan got it.
 */
export function setRoute(span: Span, method: string, route: string, pool: string): void {
  if (!span.isRecording()) return;
  span.updateName(`${KNOWN_METHODS.has(method) ? method : OTHER_METHOD_NAME} ${route}`);
  span.setAttribute(ATTR_HTTP_ROUTE, route);
  span.setAttribute('tiergate.pool', pool);
}

/**
 * Ends the SERVER span with the status the client got. Status ERROR only for 5xx (a 4xx is the client's
 * fault, per the HTTP conventions), with `error.type` the TG_* code the proxy answered with, else the status.
 * A client that went away before the answer gets `tiergate.client_aborted` and no error status.
 */
export function endServerSpan(span: Span, status: number, code: string | undefined, aborted: boolean): void {
  if (span.isRecording()) {
    if (status > 0) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    if (aborted) span.setAttribute('tiergate.client_aborted', true);
    if (status >= 500) {
      span.setAttribute(ATTR_ERROR_TYPE, code ?? String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }
  span.end();
}

/** What a CLIENT span of one attempt is started with. */
export interface AttemptFacts {
  readonly method: string;
  /** `host:port` or `[v6]:port`. */
  readonly upstream: string;
  /** The request target sent upstream (path and query). */
  readonly target: string;
  /** 1 for the first try, 2 for the first retry, … */
  readonly attempt: number;
  readonly pool: string;
  readonly algorithm: string;
  /** Why the previous attempt was given up (attempts ≥ 2): a TG_* code or `http_<status>`. */
  readonly retryReason: string | undefined;
}

/**
 * The CLIENT span of one upstream attempt, a child of `server`; undefined when `server` is not recording
 * (not sampled): then no per-attempt span is made and the SERVER span's context goes upstream unsampled.
 */
export function startAttemptSpan(tracer: Tracer, server: Span, facts: AttemptFacts): Span | undefined {
  if (!server.isRecording()) return undefined;
  const colon = facts.upstream.lastIndexOf(':');
  const host = facts.upstream.slice(0, colon);
  const known = KNOWN_METHODS.has(facts.method);
  // The client conventions' name is `{method}` (`{method} {url.template}` needs a template; there is none).
  const span = tracer.startSpan(known ? facts.method : OTHER_METHOD_NAME, CLIENT_SPAN_OPTIONS, new ServerSpanContext(server));
  // Set one by one after the start, as on the SERVER span (the sampler does not read them: the parent decides).
  span.setAttribute(ATTR_HTTP_REQUEST_METHOD, known ? facts.method : '_OTHER');
  if (!known) span.setAttribute(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, facts.method);
  span.setAttribute(ATTR_SERVER_ADDRESS, host.charCodeAt(0) === 91 ? host.slice(1, -1) : host);
  span.setAttribute(ATTR_SERVER_PORT, Number(facts.upstream.slice(colon + 1)));
  // Without the query, as url.path on the SERVER span (it may hold secrets); upstreams are http (no upstream TLS).
  const q = facts.target.indexOf('?');
  span.setAttribute(ATTR_URL_FULL, `http://${facts.upstream}${q < 0 ? facts.target : facts.target.slice(0, q)}`);
  span.setAttribute(ATTR_NETWORK_PROTOCOL_VERSION, UPSTREAM_PROTOCOL_VERSION);
  // The conventions count resends: absent on the first try, 1 on the first retry.
  if (facts.attempt > 1) span.setAttribute(ATTR_HTTP_REQUEST_RESEND_COUNT, facts.attempt - 1);
  span.setAttribute('tiergate.pool', facts.pool);
  span.setAttribute('tiergate.balancer.algorithm', facts.algorithm);
  if (facts.retryReason !== undefined) span.setAttribute('tiergate.retry_reason', facts.retryReason);
  return span;
}

/** The context key the API keeps the active span under (`createContextKey` is `Symbol.for` of this name). */
const SPAN_KEY = Symbol.for('OpenTelemetry Context Key SPAN');

/**
 * ROOT_CONTEXT with the SERVER span set: what `trace.setSpan(ROOT_CONTEXT, server)` returns, as one small object.
 * The API's context copies a Map on every setValue, once per attempt here; a tracer only reads the span back.
 * Anything derived from it (setValue, deleteValue) is an ordinary API context.
 */
class ServerSpanContext implements Context {
  readonly #span: Span;

  constructor(span: Span) {
    this.#span = span;
  }

  getValue(key: symbol): unknown {
    return key === SPAN_KEY ? this.#span : undefined;
  }

  setValue(key: symbol, value: unknown): Context {
    return trace.setSpan(ROOT_CONTEXT, this.#span).setValue(key, value);
  }

  deleteValue(key: symbol): Context {
    return key === SPAN_KEY ? ROOT_CONTEXT : this;
  }
}

/**
 * Ends an attempt's CLIENT span: `http.response.status_code` when a response came; status ERROR with
 * `error.type` for a failed attempt (`code`, a TG_PROXY_UPSTREAM_* code) or a 5xx answer (its status).
 */
export function endAttemptSpan(span: Span, status: number, code: string | undefined): void {
  if (status > 0) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  const type = code ?? (status >= 500 ? String(status) : undefined);
  if (type !== undefined) {
    span.setAttribute(ATTR_ERROR_TYPE, type);
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/**
 * `headers` plus the W3C trace context of `span` (`traceparent`, and `tracestate` when it has one), as a new
 * list (the shared list is reused by the next attempt). An invalid context (no SDK) adds nothing.
 *
 * Formatted here (W3C Trace Context §3.2: `00-<trace-id>-<parent-id>-<flags>`) rather than through
 * `propagation.inject`: @tiergate/telemetry registers W3C trace context as the propagator, and going through
 * it costs two context objects per attempt on the hot path. Baggage the client sent travels as the header
 * it came in; the proxy adds none.
 */
export function withTraceContext(headers: readonly string[], span: Span): readonly string[] {
  const sc = span.spanContext();
  // The API's invalid context (no SDK registered); ids from the SDK or a validated traceparent are well-formed,
  // so the API's regex check (isSpanContextValid) is not paid per request.
  if (sc.traceId === INVALID_TRACEID || sc.spanId === INVALID_SPANID) return headers;
  const out = headers.slice();
  out.push('traceparent', `00-${sc.traceId}-${sc.spanId}${FLAGS_SUFFIX[sc.traceFlags & 0xff]}`);
  const state = sc.traceState?.serialize();
  if (state) out.push('tracestate', state);
  return out;
}

/** `-<flags>` for every trace-flags byte, as traceparent ends. */
const FLAGS_SUFFIX = Array.from({ length: 256 }, (_, flags) => `-${flags.toString(16).padStart(2, '0')}`);

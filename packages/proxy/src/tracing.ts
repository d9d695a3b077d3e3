/**
 * OpenTelemetry spans of the proxy (docs/telemetry.md, "Proxy"): one SERVER span per client request and one
 * CLIENT span per upstream attempt, W3C trace context sent upstream from the attempt's span. Only the API is
 * used; the SDK is whatever `@tiergate/telemetry` registered in this process, if anything.
 *
 * Cost with tracing off: `activeTracer()` is the only call a request makes (a global lookup and a property
 * read); everything else hangs off the span it returns, so no attribute, context or header is built.
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

/** The tracer name (the package name, per docs/telemetry.md). */
export const TRACER_NAME = '@tiergate/proxy';

/** Methods the HTTP semantic conventions know; any other is reported as `_OTHER`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
/** SERVER span names per known method, and the start options: built once, not per request. */
const SERVER_SPAN_NAMES = new Map([...KNOWN_METHODS].map((m) => [m, `HTTP ${m}`]));
const SERVER_SPAN_OPTIONS = { kind: SpanKind.SERVER } as const;
const CLIENT_SPAN_OPTIONS = { kind: SpanKind.CLIENT } as const;
/** CLIENT span names per known method (`_OTHER` is named `upstream`). */
const CLIENT_SPAN_NAMES = new Map([...KNOWN_METHODS].map((m) => [m, `upstream ${m}`]));

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
  readonly serverAddress: string | undefined;
  readonly serverPort: number;
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
  const name = SERVER_SPAN_NAMES.get(facts.method);
  const span = tracer.startSpan(name ?? 'HTTP', SERVER_SPAN_OPTIONS, parent);
  if (span.isRecording()) setServerAttributes(span, facts, name !== undefined);
  return span;
}

/** One setAttribute per fact: no attributes object is built only to be copied into the span. */
function setServerAttributes(span: Span, facts: ServerSpanFacts, knownMethod: boolean): void {
  const q = facts.url.indexOf('?');
  span.setAttribute('http.request.method', knownMethod ? facts.method : '_OTHER');
  // Without the query: it may hold secrets.
  span.setAttribute('url.path', q < 0 ? facts.url : facts.url.slice(0, q));
  span.setAttribute('url.scheme', facts.scheme);
  span.setAttribute('client.address', facts.clientAddress);
  span.setAttribute('server.port', facts.serverPort);
  if (facts.serverAddress) span.setAttribute('server.address', facts.serverAddress);
  if (!knownMethod) span.setAttribute('http.request.method_original', facts.method);
}

/** Route facts known once the request is matched; a no-op on a span that is not recording. */
export function setRoute(span: Span, route: string, pool: string): void {
  if (!span.isRecording()) return;
  span.setAttribute('http.route', route);
  span.setAttribute('tiergate.pool', pool);
}

/**
 * Ends the SERVER span with the status the client got. Status ERROR only for 5xx (a 4xx is the client's
 * fault, per the HTTP conventions), with `error.type` the TG_* code the proxy answered with, else the status.
 * A client that went away before the answer gets `tiergate.client_aborted` and no error status.
 */
export function endServerSpan(span: Span, status: number, code: string | undefined, aborted: boolean): void {
  if (span.isRecording()) {
    if (status > 0) span.setAttribute('http.response.status_code', status);
    if (aborted) span.setAttribute('tiergate.client_aborted', true);
    if (status >= 500) {
      span.setAttribute('error.type', code ?? String(status));
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
  const method = KNOWN_METHODS.has(facts.method) ? facts.method : '_OTHER';
  const name = CLIENT_SPAN_NAMES.get(method) ?? 'upstream';
  const span = tracer.startSpan(name, CLIENT_SPAN_OPTIONS, new ServerSpanContext(server));
  // Set one by one after the start, as on the SERVER span (the sampler does not read them: the parent decides).
  span.setAttribute('http.request.method', method);
  span.setAttribute('server.address', host.charCodeAt(0) === 91 ? host.slice(1, -1) : host);
  span.setAttribute('server.port', Number(facts.upstream.slice(colon + 1)));
  span.setAttribute('tiergate.attempt', facts.attempt);
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
  if (status > 0) span.setAttribute('http.response.status_code', status);
  const type = code ?? (status >= 500 ? String(status) : undefined);
  if (type !== undefined) {
    span.setAttribute('error.type', type);
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

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
  type Attributes,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';

/** The tracer name (the package name, per docs/telemetry.md). */
export const TRACER_NAME = '@tiergate/proxy';

/** Methods the HTTP semantic conventions know; any other is reported as `_OTHER`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

type DelegatingProvider = TracerProvider & { getDelegateTracer?(name: string): Tracer | undefined };

/**
 * The proxy's tracer when an SDK is registered, else undefined. The API always hands out a proxy provider;
 * its `getDelegateTracer` is undefined until an SDK registers (and again after the SDK's shutdown
 * unregisters it), which is how "off" is told apart without starting a span. Looked up per request rather
 * than once at module load: the API's module-level ProxyTracer keeps the first SDK's tracer forever, so a
 * process that stops and restarts telemetry (tests do) would keep exporting to a shut-down provider.
 */
export function activeTracer(): Tracer | undefined {
  const provider = trace.getTracerProvider() as DelegatingProvider;
  return provider.getDelegateTracer ? provider.getDelegateTracer(TRACER_NAME) : provider.getTracer(TRACER_NAME);
}

/** What the SERVER span is started with (what samplers see). */
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
 */
export function startServerSpan(tracer: Tracer, facts: ServerSpanFacts, headers: IncomingHttpHeaders, trustedParent: boolean): Span {
  const parent = trustedParent && headers.traceparent !== undefined ? propagation.extract(ROOT_CONTEXT, headers) : ROOT_CONTEXT;
  const method = KNOWN_METHODS.has(facts.method) ? facts.method : '_OTHER';
  const q = facts.url.indexOf('?');
  const attributes: Attributes = {
    'http.request.method': method,
    // Without the query: it may hold secrets.
    'url.path': q < 0 ? facts.url : facts.url.slice(0, q),
    'url.scheme': facts.scheme,
    'client.address': facts.clientAddress,
    'server.port': facts.serverPort,
  };
  if (facts.serverAddress) attributes['server.address'] = facts.serverAddress;
  if (method === '_OTHER') attributes['http.request.method_original'] = facts.method;
  return tracer.startSpan(method === '_OTHER' ? 'HTTP' : `HTTP ${method}`, { kind: SpanKind.SERVER, attributes }, parent);
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
  const attributes: Attributes = {
    'http.request.method': method,
    'server.address': host.charCodeAt(0) === 91 ? host.slice(1, -1) : host,
    'server.port': Number(facts.upstream.slice(colon + 1)),
    'tiergate.attempt': facts.attempt,
    'tiergate.pool': facts.pool,
    'tiergate.balancer.algorithm': facts.algorithm,
  };
  if (facts.retryReason !== undefined) attributes['tiergate.retry_reason'] = facts.retryReason;
  const parent = trace.setSpan(ROOT_CONTEXT, server);
  return tracer.startSpan(method === '_OTHER' ? 'upstream' : `upstream ${method}`, { kind: SpanKind.CLIENT, attributes }, parent);
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

const pushHeader: TextMapSetter<string[]> = {
  set: (carrier, key, value) => {
    carrier.push(key, value);
  },
};

/**
 * `headers` plus the trace context of `span` (`traceparent`, `tracestate`) through the registered propagator,
 * as a new list (the shared list is reused by the next attempt). An invalid context (no SDK) adds nothing.
 * Only the span goes into the context injected: baggage the client sent travels as the header it came in.
 */
export function withTraceContext(headers: readonly string[], span: Span): readonly string[] {
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return headers;
  const out = headers.slice();
  propagation.inject(trace.setSpanContext(ROOT_CONTEXT, sc), out, pushHeader);
  return out;
}

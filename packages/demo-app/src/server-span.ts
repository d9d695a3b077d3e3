import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Attributes, context, propagation, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

// A proxy tracer: a no-op until the process registers an SDK (docs/telemetry.md), then real spans.
const tracer = trace.getTracer('@tiergate/demo-app');

// The methods of RFC 9110 and RFC 5789; the HTTP semantic conventions report any other as `_OTHER`
// so a client cannot mint span names and attribute values at will.
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);

/** What the SERVER span of one request starts with. */
export interface ServerSpanFacts {
  /** The URL path without the query (a query may hold secrets). */
  readonly path: string;
  /** The app's route that matched, or undefined for none (a 404): `http.route` must stay low-cardinality. */
  readonly route: string | undefined;
  /** The client as the app believes it (X-Real-IP from a trusted proxy, else the TCP peer). */
  readonly clientAddress: string;
}

/**
 * Runs `handle` inside a SERVER span `{method} {http.route}` (`{method}` without a route; `HTTP` for `_OTHER`, per the
 * HTTP server conventions) for `req`, the span active meanwhile so that
 * what the handler starts (session spans, Redis CLIENT spans) becomes its children. The span continues
 * the trace of the request's W3C `traceparent` (the app sits behind the proxy, which it trusts) and
 * ends when the response is finished or the client went away, with the status code the client got;
 * status ERROR only for a 5xx (for a SERVER span a 4xx is the client's fault). Without a registered
 * SDK every call here is a no-op.
 */
export function withServerSpan(req: IncomingMessage, res: ServerResponse, facts: ServerSpanFacts, handle: () => void): void {
  const parent = propagation.extract(ROOT_CONTEXT, req.headers);
  const method = KNOWN_METHODS.has(req.method ?? '') ? (req.method as string) : '_OTHER';
  const attributes: Attributes = {
    'http.request.method': method,
    'url.path': facts.path,
    'url.scheme': 'http',
    'client.address': facts.clientAddress,
    'network.protocol.version': req.httpVersion,
  };
  // The name the client addressed (Host; the conventions' server.address), not the socket's local address.
  const host = req.headers.host ? URL.parse(`http://${req.headers.host}`) : null; // null: a Host that is no authority
  if (host) {
    attributes['server.address'] = host.hostname.replace(/^\[(.*)\]$/, '$1');
    attributes['server.port'] = host.port === '' ? 80 : Number(host.port);
  }
  if (req.headers['user-agent'] !== undefined) attributes['user_agent.original'] = req.headers['user-agent'];
  if (method === '_OTHER') attributes['http.request.method_original'] = req.method;
  if (facts.route !== undefined) attributes['http.route'] = facts.route;
  const nameMethod = method === '_OTHER' ? 'HTTP' : method;
  const name = facts.route === undefined ? nameMethod : `${nameMethod} ${facts.route}`;
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  // 'close' comes after 'finish' and also when the client went away first: the one place to end it.
  res.once('close', () => endServerSpan(span, res));
  context.with(trace.setSpan(parent, span), handle);
}

function endServerSpan(span: Span, res: ServerResponse): void {
  if (res.headersSent) {
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500) {
      span.setAttribute('error.type', String(res.statusCode));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }
  span.end();
}

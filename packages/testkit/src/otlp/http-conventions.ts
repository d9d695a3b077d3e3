import type { CollectedSpan } from './collect-spans.ts';

/**
 * The OpenTelemetry HTTP semantic conventions (stable: "HTTP spans", server and client) as a table, for tests that
 * check every HTTP span the stack emits. `required` must be there; `conditional` must be there when its condition
 * holds (checked where a span shows it); `recommended` must be there unless the table's `omitted` says why
 * tiergate leaves it out (docs/telemetry.md says the same).
 */
export const HTTP_SPAN_CONVENTIONS = {
  SERVER: {
    required: ['http.request.method', 'url.path', 'url.scheme'],
    recommended: ['client.address', 'network.protocol.version', 'server.address', 'server.port', 'user_agent.original'],
    omitted: {
      // The TCP peer is the director or a proxy in front; client.address carries the client. Left out by the proxy;
      // the app's SERVER spans (@opentelemetry/instrumentation-http) record it, which the table allows.
      'network.peer.address': 'client.address is the client (after trusted proxies); the TCP peer is not recorded',
      'network.peer.port': 'as network.peer.address',
    },
  },
  CLIENT: {
    required: ['http.request.method', 'server.address', 'server.port', 'url.full'],
    recommended: ['network.protocol.version'],
    omitted: {
      'network.peer.address': 'the upstream is addressed as configured (server.address); its resolved address is not recorded',
      'network.peer.port': 'as network.peer.address',
    },
  },
} as const;

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/**
 * What `span` (a SERVER or CLIENT span of an HTTP request) breaks of the conventions, one line each; [] when
 * nothing. Checked: the name (`{method} {http.route}` or `{method}` for SERVER, `{method}` for CLIENT; `HTTP` for
 * `_OTHER`), the required and recommended attributes (a recommended one may be absent only when its source was, e.g.
 * no User-Agent header: `absentSources` names those), `http.request.method_original` for `_OTHER`, `error.type` on an
 * ERROR span, no query in `url.path`/`url.full`.
 */
export function httpConventionViolations(span: CollectedSpan, absentSources: readonly string[] = []): string[] {
  if (span.kind !== 'SERVER' && span.kind !== 'CLIENT') return [`${span.name}: not an HTTP span (kind ${span.kind})`];
  const table = HTTP_SPAN_CONVENTIONS[span.kind];
  const a = span.attributes;
  const out: string[] = [];
  const label = `${span.kind} '${span.name}'`;
  for (const key of table.required) if (a[key] === undefined) out.push(`${label}: required ${key} missing`);
  for (const key of table.recommended)
    if (a[key] === undefined && !absentSources.includes(key)) out.push(`${label}: recommended ${key} missing`);
  const method = String(a['http.request.method']);
  if (method === '_OTHER' ? a['http.request.method_original'] === undefined : !KNOWN_METHODS.has(method)) {
    out.push(`${label}: http.request.method ${method} without http.request.method_original, or not a known method`);
  }
  const nameMethod = method === '_OTHER' ? 'HTTP' : method;
  const route = a['http.route'];
  const expected = span.kind === 'SERVER' && route !== undefined ? `${nameMethod} ${String(route)}` : nameMethod;
  if (span.name !== expected) out.push(`${label}: name should be '${expected}'`);
  if (span.status.code === 'ERROR' && a['error.type'] === undefined) out.push(`${label}: ERROR status without error.type`);
  for (const key of ['url.path', 'url.full']) if (String(a[key] ?? '').includes('?')) out.push(`${label}: ${key} carries a query`);
  return out;
}

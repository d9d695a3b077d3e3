import { context } from '@opentelemetry/api';
import { getRPCMetadata, RPCType } from '@opentelemetry/core';
import { ATTR_CLIENT_ADDRESS } from '@opentelemetry/semantic-conventions';

/**
 * Tells the SERVER span of the request being handled what only the app knows. The span itself comes from
 * `@opentelemetry/instrumentation-http` when the process runs an SDK (`tiergate demo-app` starts one:
 * docs/telemetry.md); this must be called synchronously in the request listener, where its context is active.
 *
 * - `route`: the app's route that matched, or undefined for none (a 404: `http.route` must stay low-cardinality).
 *   It goes into the RPC metadata of the request's context, the hook web frameworks' instrumentations (Express,
 *   Fastify) use: the HTTP instrumentation sets `http.route` from it and renames the span `{method} {http.route}`
 *   when the response ends.
 * - `clientAddress`: the client as the app believes it (X-Real-IP from a trusted proxy, else the TCP peer). The
 *   instrumentation's own `client.address` is the first X-Forwarded-For entry, which any client can write.
 *
 * A no-op without an SDK, and for a request the instrumentation ignores.
 */
export function describeServerSpan(route: string | undefined, clientAddress: string): void {
  const metadata = getRPCMetadata(context.active());
  if (metadata?.type !== RPCType.HTTP) return;
  if (route !== undefined) metadata.route = route;
  metadata.span.setAttribute(ATTR_CLIENT_ADDRESS, clientAddress);
}

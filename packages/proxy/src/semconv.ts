/**
 * The OpenTelemetry semantic-convention attribute names tracing.ts sets (all stable), as
 * @opentelemetry/semantic-conventions names them. A copy, because that package's entry point builds every
 * convention, deprecated ones included (341 KB of source, +0.9 MB of live heap in a bare node 24 process), and a
 * proxy process keeps what it loads for its whole life, tracing or not; its `exports` map allows no smaller import.
 * packages/proxy/test/semconv.test.ts checks each against the package.
 */
export const ATTR_CLIENT_ADDRESS = 'client.address';
export const ATTR_ERROR_TYPE = 'error.type';
export const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
export const ATTR_HTTP_REQUEST_METHOD_ORIGINAL = 'http.request.method_original';
export const ATTR_HTTP_REQUEST_RESEND_COUNT = 'http.request.resend_count';
export const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const ATTR_HTTP_ROUTE = 'http.route';
export const ATTR_NETWORK_PROTOCOL_VERSION = 'network.protocol.version';
export const ATTR_SERVER_ADDRESS = 'server.address';
export const ATTR_SERVER_PORT = 'server.port';
export const ATTR_URL_FULL = 'url.full';
export const ATTR_URL_PATH = 'url.path';
export const ATTR_URL_SCHEME = 'url.scheme';
export const ATTR_USER_AGENT_ORIGINAL = 'user_agent.original';

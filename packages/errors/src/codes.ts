/**
 * The catalogue of stable error codes. Every code is documented in docs/errors.md
 * (a test keeps the two equal); `status` is the HTTP status a proxy or admin endpoint
 * answers with when this error ends a request, and `exit` the CLI exit code.
 *
 * Adding a code: add it here and a row to docs/errors.md, in the same commit.
 */
export const ERROR_CODES = {
  // configuration
  TG_CONFIG_INVALID: { status: 500, exit: 1, summary: 'The configuration file failed validation.' },
  TG_CONFIG_UNREADABLE: { status: 500, exit: 1, summary: 'The configuration file could not be read.' },
  TG_CONFIG_PARSE: { status: 500, exit: 1, summary: 'The configuration file is not valid YAML.' },
  // CLI
  TG_CLI_USAGE: { status: 400, exit: 2, summary: 'The command line is malformed.' },
  // proxy: client side
  TG_PROXY_BAD_REQUEST: { status: 400, exit: 1, summary: 'The client request is malformed.' },
  TG_PROXY_BODY_TOO_LARGE: { status: 413, exit: 1, summary: 'The request body exceeds the route limit.' },
  TG_PROXY_HEADERS_TOO_LARGE: { status: 431, exit: 1, summary: 'The request headers exceed the limit.' },
  TG_PROXY_CLIENT_TIMEOUT: { status: 408, exit: 1, summary: 'The client was too slow sending its request.' },
  TG_PROXY_RATE_LIMITED: { status: 429, exit: 1, summary: 'The client address exceeded its rate limit.' },
  TG_PROXY_CONCURRENCY_LIMITED: { status: 429, exit: 1, summary: 'The client address has as many requests in flight as its limit allows.' },
  TG_PROXY_NO_ROUTE: { status: 404, exit: 1, summary: 'No route matches the request host and path.' },
  TG_PROXY_FORBIDDEN: { status: 403, exit: 1, summary: "The route's access rules deny the client address." },
  // 501: the pool speaks HTTP/2 to its servers, which carries no Upgrade (a server is not at fault).
  TG_PROXY_UPGRADE_UNSUPPORTED: { status: 501, exit: 1, summary: 'An Upgrade was asked of a pool that speaks HTTP/2 to its servers.' },
  // proxy: upstream side
  // 502 as nginx's "no live upstreams" (NGX_BUSY → ngx_http_upstream_next with FT_NOLIVE → 502).
  TG_PROXY_NO_UPSTREAM: { status: 502, exit: 1, summary: 'The pool has no usable server.' },
  TG_PROXY_UPSTREAM_CONNECT: { status: 502, exit: 1, summary: 'Connecting to the upstream server failed.' },
  TG_PROXY_UPSTREAM_RESET: { status: 502, exit: 1, summary: 'The upstream server closed or reset the connection.' },
  TG_PROXY_UPSTREAM_ERROR: { status: 502, exit: 1, summary: 'The upstream server failed or sent an invalid response.' },
  TG_PROXY_UPSTREAM_STATUS: { status: 502, exit: 1, summary: 'The upstream answered with a status configured as a failure.' },
  TG_PROXY_UPSTREAM_TIMEOUT: { status: 504, exit: 1, summary: 'The upstream server did not answer in time.' },
  TG_PROXY_UPSTREAM_CONNECT_TIMEOUT: { status: 504, exit: 1, summary: 'Connecting to the upstream server timed out.' },
  TG_PROXY_SHUTTING_DOWN: { status: 503, exit: 1, summary: 'The proxy is draining and takes no new requests.' },
  TG_PROXY_LISTEN: { status: 500, exit: 1, summary: 'A proxy listener could not bind its address and port.' },
  TG_PROXY_RELOAD_REJECTED: {
    status: 409,
    exit: 1,
    summary: 'A reload changed what only a restart can change (listeners, workers, admin).',
  },
  // proxy admin endpoint
  TG_ADMIN_UNAUTHORIZED: { status: 401, exit: 1, summary: 'The admin request lacks the configured bearer token.' },
  TG_ADMIN_FORBIDDEN: { status: 403, exit: 1, summary: 'The admin request names a foreign Host or comes from a browser (Origin).' },
  TG_ADMIN_FAILED: { status: 500, exit: 1, summary: 'The admin endpoint failed to answer (a worker did not reply).' },
  TG_ADMIN_UNREACHABLE: { status: 503, exit: 1, summary: 'The CLI could not reach the running proxy admin endpoint.' },
  TG_ADMIN_BAD_REQUEST: { status: 400, exit: 1, summary: 'The admin request body is malformed (not the JSON the endpoint takes).' },
  // health
  TG_HEALTH_CHECK_FAILED: { status: 503, exit: 1, summary: 'A health check failed.' },
  // IPVS / director
  TG_IPVS_PERMISSION: { status: 500, exit: 1, summary: 'IPVS needs root or CAP_NET_ADMIN (EPERM).' },
  TG_IPVS_NOT_LOADED: { status: 500, exit: 1, summary: 'The kernel has no IPVS (the ip_vs module is not loaded).' },
  TG_IPVS_EXISTS: { status: 500, exit: 1, summary: 'The IPVS object already exists (EEXIST).' },
  TG_IPVS_NO_SERVICE: { status: 500, exit: 1, summary: 'The IPVS service does not exist (ESRCH).' },
  TG_IPVS_NOT_FOUND: { status: 500, exit: 1, summary: 'The IPVS object, scheduler or family was not found (ENOENT).' },
  TG_IPVS_RANGE: { status: 500, exit: 1, summary: 'A value is out of range for IPVS (ERANGE).' },
  TG_IPVS_INVALID: { status: 500, exit: 1, summary: 'The kernel rejected the IPVS request as invalid (EINVAL).' },
  TG_IPVS_KERNEL: { status: 500, exit: 1, summary: 'The kernel returned another error for an IPVS request.' },
  TG_IPVS_PROTOCOL: { status: 500, exit: 1, summary: 'A netlink message could not be decoded.' },
  TG_IPVSADM_FAILED: { status: 500, exit: 1, summary: 'The ipvsadm command failed.' },
  TG_DIRECTOR_APPLY_PARTIAL: { status: 500, exit: 1, summary: 'An apply failed part way; the report lists the ops applied.' },
  TG_DIRECTOR_UNKNOWN_SERVER: {
    status: 404,
    exit: 1,
    summary: 'A drain names a virtual service or real server the configuration does not have.',
  },
  TG_DIRECTOR_WAIT_TIMEOUT: {
    status: 504,
    exit: 1,
    summary: '`director wait` timed out before the director routed new connections to the real server.',
  },
  TG_HOST_SETUP: { status: 500, exit: 1, summary: 'Setting up a director or real-server host failed.' },
  // sessions
  TG_SESSION_STORE_UNAVAILABLE: { status: 503, exit: 1, summary: 'The session store (Redis) is unreachable.' },
  TG_SESSION_CORRUPT: { status: 500, exit: 1, summary: 'Stored session data is corrupt.' },
  TG_SESSION_TOO_LARGE: { status: 413, exit: 1, summary: 'The session value exceeds the size limit.' },
  // local stack
  TG_STACK_MISSING_BINARY: { status: 500, exit: 1, summary: 'A program the local stack needs is not installed.' },
  TG_STACK_START_FAILED: { status: 500, exit: 1, summary: 'A process of the local stack failed to start.' },
  // test harness (testkit)
  TG_VM_PREREQUISITE: { status: 500, exit: 1, summary: 'The QEMU guest harness lacks a kernel, qemu or busybox.' },
  TG_VM_FAILED: { status: 500, exit: 1, summary: 'The QEMU guest did not finish its script (timeout or crash).' },
  // telemetry
  TG_TELEMETRY_SETUP: { status: 500, exit: 1, summary: 'The telemetry SDK could not be started.' },
} as const satisfies Record<string, { status: number; exit: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

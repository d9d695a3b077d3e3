import { z } from 'zod';
import { cidr, hostPort, ipAddress, port } from './address-schema.ts';
import { duration, size } from './units.ts';

/**
 * The one schema of tiergate.yaml. Every object is strict (unknown keys are errors), every
 * default is the one nginx / keepalived / ipvsadm users know, and durations and sizes are
 * normalised to milliseconds and bytes. Cross-field rules live in ./rules.ts.
 * The reference for users is docs/config-reference.md; keep both in step.
 */

/** Kernel IPVS schedulers (ipvsadm -s). */
export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf'] as const;
/** L7 balancing algorithms; equal to the balancer registry's keys (a test checks it). */
export const ALGORITHM_NAMES = ['round_robin', 'weighted', 'ip_hash', 'hash', 'least_conn', 'random_two', 'ewma'] as const;

const MAX_WEIGHT = 2 ** 31 - 1;

// ---------------------------------------------------------------- health checks (shared L4/L7)

const statusRange = z.union([
  z.number().int().min(100).max(599),
  z
    .string()
    .regex(/^[1-5]\d\d-[1-5]\d\d$/, 'expected a status like 200 or a range like 200-399')
    .refine((s) => Number(s.slice(0, 3)) <= Number(s.slice(4)), 'range start is above its end'),
]);

const timing = (interval: number, timeout: number, rise: number, fall: number) => ({
  interval: duration.default(interval),
  timeout: duration.default(timeout),
  rise: z.number().int().min(1).max(100).default(rise),
  fall: z.number().int().min(1).max(100).default(fall),
  /** Fraction of the interval added at random to each wait (spreads checks, keepalived `warmup`). */
  jitter: z.number().min(0).max(1).default(0.1),
  /** Port to check instead of the server's (keepalived `connect_port`). */
  port: port.optional(),
});

const httpCheckFields = {
  path: z.string().startsWith('/', 'must start with /').default('/'),
  host: z.string().optional(),
  expect_status: z.array(statusRange).min(1).default(['200-399']),
  body_match: z.string().optional(),
  tls_verify: z.boolean().default(false),
};

function healthCheck<X extends z.ZodRawShape, C extends z.ZodRawShape = Record<never, never>>(
  interval: number,
  timeout: number,
  rise: number,
  fall: number,
  extra: X,
  commandExtra?: C,
) {
  const t = { ...timing(interval, timeout, rise, fall), ...extra };
  return z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('tcp'), ...t }),
    z.strictObject({ type: z.literal('http'), ...t, ...httpCheckFields }),
    z.strictObject({ type: z.literal('https'), ...t, ...httpCheckFields }),
    z.strictObject({ type: z.literal('command'), ...t, command: z.array(z.string().min(1)).min(1), ...(commandExtra as C) }),
  ]);
}

/** keepalived defaults: delay_loop 60 s, connect_timeout 5 s, retry 1 (→ fall 2), up after one success. */
export const l4HealthCheck = healthCheck(
  60_000,
  5_000,
  1,
  2,
  {
    /** `quiesce`: weight 0, existing connections continue (keepalived `inhibit_on_failure`); `remove`: delete. */
    on_failure: z.enum(['quiesce', 'remove']).default('quiesce'),
  },
  {
    /** Who runs the command (keepalived MISC_CHECK `user`); default `nobody` when the director runs as root. */
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_.-]*\$?$/i, 'expected a user name')
      .optional(),
  },
);
/** nginx plus `health_check` defaults: interval 5 s, passes 1, fails 1 (timeout 2 s, ours). */
const l7Timing = timing(5_000, 2_000, 1, 1);
/**
 * L7 only (the director's real servers are proxy nodes, checked by http): the gRPC health protocol
 * (`grpc.health.v1.Health/Check`), as nginx plus `health_check type=grpc grpc_service=`, Envoy's
 * `grpc_health_check` and Kubernetes' `grpc` probe.
 */
const grpcCheck = z.strictObject({
  type: z.literal('grpc'),
  ...l7Timing,
  /** The service asked about; '' (the default) is the server as a whole (grpc.health.v1). */
  service: z.string().default(''),
  /** Speak TLS (h2 by ALPN) instead of cleartext h2c. */
  tls: z.boolean().default(false),
  tls_verify: z.boolean().default(false),
});
export const l7HealthCheck = z.discriminatedUnion('type', [...healthCheck(5_000, 2_000, 1, 1, {}).options, grpcCheck]);

// ---------------------------------------------------------------- L4: directors and virtual services

export const realServer = z.strictObject({
  address: ipAddress,
  /** Defaults to the service's port (DR/TUN cannot translate ports). */
  port: z.number().int().min(0).max(65535).optional(),
  weight: z.number().int().min(0).max(MAX_WEIGHT).default(1),
  upper_threshold: z.number().int().min(0).max(MAX_WEIGHT).default(0),
  lower_threshold: z.number().int().min(0).max(MAX_WEIGHT).default(0),
});

const tunnel = z.strictObject({
  type: z.enum(['ipip', 'gue', 'gre']).default('ipip'),
  port: port.optional(),
  checksum: z.enum(['nocsum', 'csum', 'remcsum']).default('nocsum'),
});

export const virtualService = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only')
    .optional(),
  address: ipAddress.optional(),
  port: z.number().int().min(0).max(65535).optional(),
  protocol: z.enum(['tcp', 'udp', 'sctp']).default('tcp'),
  fwmark: z
    .number()
    .int()
    .min(1)
    .max(2 ** 32 - 1)
    .optional(),
  /** Address family of a fwmark service (others take it from `address`). */
  family: z.enum(['inet', 'inet6']).optional(),
  scheduler: z.enum(SCHEDULERS).default('wlc'),
  scheduler_flags: z.array(z.enum(['sh-fallback', 'sh-port', 'mh-fallback', 'mh-port'])).default([]),
  one_packet: z.boolean().default(false),
  persistence: z
    .strictObject({
      timeout: duration.default(300_000),
      /** IPv4 dotted mask, or an IPv6 prefix length. */
      netmask: z.union([z.string(), z.number().int().min(1).max(128)]).optional(),
    })
    .optional(),
  forwarding: z.enum(['dr', 'nat', 'tun']).default('dr'),
  tunnel: tunnel.optional(),
  real_servers: z.array(realServer).default([]),
  health_check: l4HealthCheck.optional(),
  sorry_server: z.strictObject({ address: ipAddress, port: z.number().int().min(0).max(65535).optional() }).optional(),
  /** How long a removed real server drains at weight 0 before it is deleted. */
  drain_timeout: duration.default(300_000),
});

export const director = z.strictObject({
  name: z.string().min(1),
  /** The interface that carries the VIPs (keepalived `interface`). */
  interface: z.string().min(1),
  vips: z.array(ipAddress).default([]),
  /**
   * Who adds and removes `vips` on `interface`: the director, or keepalived (VRRP moves them between a pair).
   * Unset: keepalived when `sync_daemon` is given (a failover pair), else director (see director's vipOwner).
   */
  vip_owner: z.enum(['director', 'keepalived']).optional(),
  /** IPVS driver: generic netlink (default) or the ipvsadm binary. */
  driver: z.enum(['netlink', 'ipvsadm']).default('netlink'),
  reconcile_interval: duration.default(5_000),
  /** How often the daemon reads and plans the whole IPVS table (between resyncs it trusts its model of it); 0 = every cycle. */
  resync_interval: duration.default(30_000),
  admin: z.strictObject({ address: ipAddress.default('127.0.0.1'), port: port.default(9902), token: z.string().optional() }).prefault({}),
  timeouts: z.strictObject({ tcp: duration.optional(), tcp_fin: duration.optional(), udp: duration.optional() }).optional(),
  sync_daemon: z
    .strictObject({
      state: z.enum(['master', 'backup']),
      interface: z.string().min(1),
      sync_id: z.number().int().min(0).max(255).default(0),
    })
    .optional(),
  sysctls: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
});

// ---------------------------------------------------------------- L7: proxy

export const upstreamServer = z.strictObject({
  address: hostPort,
  weight: z.number().int().min(1).max(MAX_WEIGHT).default(1),
  max_fails: z.number().int().min(0).default(1),
  fail_timeout: duration.default(10_000),
  backup: z.boolean().default(false),
  down: z.boolean().default(false),
  max_conns: z.number().int().min(0).default(0),
  slow_start: duration.default(0),
});

/** RFC 9110 §5.1: a field name is a token. */
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not an HTTP header name (RFC 9110 token characters only)');
/**
 * RFC 9110 §5.5: no control character but HTAB in a field value. A CR or LF would end the field (and start another
 * one the operator never wrote); node and undici refuse them, and every request would fail.
 */
const headerValue = z.string().refine((v) => {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}, 'a header value takes no control characters (CR, LF, NUL, …)');

/** nginx `proxy_set_header` (request) / `add_header` + `proxy_hide_header` (response)-like operations. */
const headerOps = z
  .strictObject({
    add: z.record(headerName, headerValue).default({}),
    set: z.record(headerName, headerValue).default({}),
    remove: z.array(headerName).default([]),
  })
  .prefault({});

const NEXT_UPSTREAM = ['error', 'timeout', 'http_500', 'http_502', 'http_503', 'http_504', 'http_429', 'non_idempotent'] as const;

export const pool = z.strictObject({
  algorithm: z.enum(ALGORITHM_NAMES).default('weighted'),
  /** `hash` key template, e.g. `$request_uri` or `$cookie_user$arg_id`. */
  hash_key: z.string().min(1).optional(),
  consistent: z.boolean().default(false),
  /** `ip_hash`: hash the whole IPv4 address instead of nginx's first three octets. */
  ip_hash_whole_address: z.boolean().default(false),
  servers: z.array(upstreamServer).min(1),
  keepalive: z
    .strictObject({
      /** Idle keep-alive connections kept per server (nginx `keepalive`). */
      connections: z.number().int().min(0).default(32),
      /** nginx `keepalive_timeout` for upstream connections. */
      timeout: duration.default(60_000),
      /** Hard cap of connections per server (0 = unlimited). */
      max_connections: z.number().int().min(0).default(0),
    })
    .prefault({}),
  timeouts: z
    .strictObject({
      connect: duration.default(60_000),
      /** Until the response headers arrive (nginx `proxy_read_timeout` for the first byte). */
      response_headers: duration.default(60_000),
      /** Between two reads of the response body (nginx `proxy_read_timeout`). */
      idle: duration.default(60_000),
      /**
       * nginx `proxy_send_timeout`: while the request is sent, how long the upstream may keep its socket
       * full (accept none of the body) before the attempt fails as a timeout (counted against it).
       */
      send: duration.default(60_000),
    })
    .prefault({}),
  retries: z
    .strictObject({
      /** nginx `proxy_next_upstream_tries`; 0 = as many as there are servers. */
      tries: z.number().int().min(0).default(0),
      /** nginx `proxy_next_upstream_timeout`; 0 = no limit. */
      timeout: duration.default(0),
      on: z.array(z.enum(NEXT_UPSTREAM)).default(['error', 'timeout']),
    })
    .prefault({}),
  health_check: l7HealthCheck.optional(),
  /**
   * How the proxy speaks to the servers (docs/proxy.md, "TLS, HTTP/2 and gRPC to upstreams"): `http1` cleartext
   * HTTP/1.1; `https` HTTP/1.1 over TLS (nginx `proxy_pass https://`, HAProxy `server … ssl`); `h2` TLS offering
   * h2 then http/1.1 by ALPN (nginx `grpc_pass grpcs://`, HAProxy `ssl alpn h2`); `h2c` cleartext HTTP/2 with
   * prior knowledge (nginx `grpc_pass grpc://`, HAProxy `proto h2`).
   */
  protocol: z.enum(['http1', 'https', 'h2', 'h2c']).default('http1'),
  /** `https`/`h2` only: verify the servers' certificates (nginx `proxy_ssl_verify`, off by default as there). */
  tls_verify: z.boolean().default(false),
  /** `https`/`h2` only: a PEM file of CAs to verify against instead of Node's bundled roots (nginx `proxy_ssl_trusted_certificate`). */
  tls_ca: z.string().min(1).optional(),
  /** `https`/`h2` only: the SNI and verified name (nginx `proxy_ssl_name`); default the server address's host when it is a name. */
  tls_server_name: z.string().min(1).optional(),
  /** `https`/`h2` only: a PEM certificate (chain) the proxy presents to the servers (nginx `proxy_ssl_certificate`). */
  tls_certificate: z.string().min(1).optional(),
  /** Its PEM private key (nginx `proxy_ssl_certificate_key`); required with `tls_certificate`, and only with it. */
  tls_certificate_key: z.string().min(1).optional(),
  sticky: z
    .strictObject({
      cookie: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid cookie name'),
      secret: z.string().min(16, 'use at least 16 characters'),
      max_age: duration.optional(),
      secure: z.boolean().default(false),
      http_only: z.boolean().default(true),
      /** nginx plus `sticky cookie … samesite=`: Lax keeps cross-site POSTs and subrequests from carrying it. */
      same_site: z.enum(['strict', 'lax', 'none']).default('lax'),
    })
    .refine((s) => s.same_site !== 'none' || s.secure, {
      message: 'same_site: none needs secure: true (browsers drop a SameSite=None cookie without Secure)',
      path: ['same_site'],
    })
    .optional(),
  headers: headerOps,
  /** Operations on the response headers sent to the client (nginx `add_header … always`, `proxy_hide_header`). */
  response_headers: headerOps,
});

// ---------------------------------------------------------------- listener TLS (nginx ssl_*; proxy listener-tls.ts)

/** Versions node can negotiate; `ssl_protocols` must name a contiguous run of them (node sets a minimum and a maximum). */
export const TLS_PROTOCOLS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
/** Mozilla's "intermediate" TLS 1.2 cipher list (ssl-config.mozilla.org, guidelines 5.7); TLS 1.3 keeps OpenSSL's suites. */
export const MOZILLA_INTERMEDIATE_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:' +
  'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:' +
  'DHE-RSA-CHACHA20-POLY1305';

const tlsCertificate = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
  /** nginx `server_name` of the server block holding this `ssl_certificate`: exact names or `*.suffix`; default: the certificate's DNS SANs. */
  server_names: z
    .array(z.string().regex(/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, 'expected a host name or *.suffix'))
    .min(1)
    .optional(),
});

const listenerTls = z
  .strictObject({
    /** One certificate (the form before SNI): the same as `certificates: [{cert, key}]`. */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** Chosen by SNI; the first is the default (no SNI, or a name no entry lists). */
    certificates: z.array(tlsCertificate).min(1).optional(),
    ssl_protocols: z
      .array(z.enum(TLS_PROTOCOLS))
      .min(1)
      .refine((ps) => {
        const at = [...new Set(ps)].map((p) => TLS_PROTOCOLS.indexOf(p)).sort();
        return at.every((v, i) => i === 0 || v === at[i - 1]! + 1);
      }, 'must be a contiguous range of versions (node sets a minimum and a maximum version)')
      .default(['TLSv1.2', 'TLSv1.3']),
    /** OpenSSL cipher list for TLS ≤ 1.2; `TLS_…` entries set the TLS 1.3 suites. */
    ssl_ciphers: z.string().min(1).default(MOZILLA_INTERMEDIATE_CIPHERS),
    ssl_ecdh_curve: z.string().min(1).default('X25519:prime256v1:secp384r1'),
    ssl_prefer_server_ciphers: z.boolean().default(false),
    ssl_session_tickets: z.boolean().default(true),
    /** Lifetime of a session ticket (the hint sent to clients, and what the server accepts). */
    ssl_session_timeout: duration.default(300_000),
    /** A 48-byte file (`openssl rand 48 > file`) all workers and nodes share; re-read on reload. Default: generated and rotated. */
    ssl_session_ticket_key: z.string().min(1).optional(),
    /** How often the generated ticket key is replaced (not with ssl_session_ticket_key). */
    ssl_session_ticket_rotation: duration.default(3_600_000),
    ssl_verify_client: z.enum(['off', 'on', 'optional']).default('off'),
    /** PEM CA certificate(s) client certificates must chain to. */
    ssl_client_certificate: z.string().min(1).optional(),
  })
  .superRefine((t, ctx) => {
    const single = t.cert !== undefined || t.key !== undefined;
    if (single && t.certificates !== undefined)
      ctx.addIssue({ code: 'custom', message: 'use either cert + key or certificates, not both', path: ['certificates'] });
    else if (single && (t.cert === undefined || t.key === undefined))
      ctx.addIssue({ code: 'custom', message: 'cert and key go together', path: [t.cert === undefined ? 'cert' : 'key'] });
    else if (!single && t.certificates === undefined)
      ctx.addIssue({ code: 'custom', message: 'a TLS listener needs cert + key, or certificates', path: ['certificates'] });
    if (t.ssl_verify_client !== 'off' && t.ssl_client_certificate === undefined)
      ctx.addIssue({
        code: 'custom',
        message: `ssl_verify_client: ${t.ssl_verify_client} needs ssl_client_certificate (the CA client certificates must chain to)`,
        path: ['ssl_client_certificate'],
      });
    if (t.ssl_session_ticket_rotation < 1000)
      ctx.addIssue({ code: 'custom', message: 'use at least 1s', path: ['ssl_session_ticket_rotation'] });
  });

export const listener = z.strictObject({
  address: ipAddress.default('0.0.0.0'),
  port: z.number().int().min(0).max(65535),
  tls: listenerTls.optional(),
  /**
   * nginx `http2 on`. With `tls`: ALPN offers `h2` then `http/1.1` (default true, as HAProxy's `bind … ssl`
   * since 2.8). Without `tls`: the listener speaks only cleartext h2c with prior knowledge (default false), for
   * internal clients that know it (gRPC, a load tester): HTTP/1.1 clients of that listener are refused.
   */
  http2: z.boolean().optional(),
  /**
   * A plain-HTTP/1.1 listener's server: `lean` (tiergate's own, net.Socket + llhttp: a third less CPU for the
   * server side) or `node` (node:http), the way back should a client meet a difference the tests did not find.
   * TLS listeners always use node's.
   */
  http1_server: z.enum(['lean', 'node']).default('lean'),
});

/** An access rule's subject: an address or CIDR, or `all` (nginx `allow all` / `deny all`). */
const accessTarget = z.string().refine((v) => v === 'all' || cidr.safeParse(v).success, 'expected an address, a CIDR or all');
/** One `allow` or one `deny` per rule, as nginx writes one directive per line. */
const accessRule = z
  .strictObject({ allow: accessTarget.optional(), deny: accessTarget.optional() })
  .refine((r) => (r.allow === undefined) !== (r.deny === undefined), 'each rule is one allow or one deny');

/** `name:port`, which a route's host refuses (below) rather than calling it a malformed name. */
const HOST_WITH_PORT = /^(\*\.)?[A-Za-z0-9.-]+:\d*$/;

export const route = z.strictObject({
  /**
   * Exact host, `*.suffix`, or omitted for any host. No port: like nginx `server_name`, a route serves every
   * listener, and the Host header's port is ignored when matching.
   */
  host: z
    .string()
    .refine((h) => !HOST_WITH_PORT.test(h), {
      message: 'a route host takes no port: routes serve every listener (as nginx server_name); ports are proxy.listeners[].port',
      abort: true,
    })
    .regex(/^(\*\.)?[A-Za-z0-9.-]+$/, 'expected a host name or *.suffix')
    .optional(),
  /** Matched against the normalised request path (nginx `$uri`), so it must be written in that form. */
  path: z
    .string()
    .startsWith('/', 'must start with /')
    .refine((p) => !/%[0-9A-Fa-f]{2}/.test(p), 'write the path decoded: requests are matched after %XX decoding (docs/proxy.md, Paths)')
    .refine(
      (p) => !/\/\/|\/\.\.?(\/|$)/.test(p),
      'never matches: requests are matched on the normalised path, without //, . or .. segments (docs/proxy.md, Paths)',
    )
    .default('/'),
  /** The pool that serves the route; required except with `redirect.prefix`. */
  pool: z.string().min(1).optional(),
  /**
   * Answer with a redirect (HAProxy `http-request redirect`, nginx `return 301 …$request_uri`): `scheme` (+ `port`)
   * redirects requests that came over the other scheme, keeping host, path and query, and proxies the rest to
   * `pool` (HAProxy `redirect scheme https unless { ssl_fc }`); `prefix` answers every request of the route with the
   * request's path and query after a fixed origin (`https://www.example.com`), and takes no pool.
   */
  redirect: z
    .strictObject({
      scheme: z.enum(['http', 'https']).optional(),
      port: port.optional(),
      prefix: z.string().min(1).optional(),
      status: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(301),
    })
    .optional(),
  headers: headerOps,
  /** Applied after the pool's `response_headers` (a route `remove` also cancels a pool `set`/`add`). */
  response_headers: headerOps,
  /**
   * nginx `allow` / `deny` in a `location`: checked in order against the client address (after `trusted_proxies`,
   * nginx's realip), the first that matches decides; none matching allows. A denied request gets 403.
   */
  access: z.array(accessRule).optional(),
  max_body_size: size.optional(),
  /**
   * The request target sent upstream: `raw` as received when it is unambiguous, else normalised (nginx
   * `proxy_pass` without a URI); `normalized` always the normalised path routing matched (docs/proxy.md).
   */
  forward_path: z.enum(['raw', 'normalized']).default('raw'),
  /**
   * nginx `proxy_pass http://pool/uri/;` in `location /path/`: the route's `path` at the start of the normalised
   * request path is replaced by this, and the result is sent normalised (re-escaped), query as received
   * (docs/proxy.md, Paths). Written decoded, as `path`.
   */
  rewrite_prefix: z
    .string()
    .startsWith('/', 'must start with /')
    .refine((p) => !/%[0-9A-Fa-f]{2}/.test(p), 'write it decoded: it is escaped as the rest of the forwarded path is')
    .refine((p) => !/[?#]/.test(p), "a path only: the query is the request's")
    .refine((p) => !/\/\/|\/\.\.?(\/|$)/.test(p), 'no //, . or .. segments: the forwarded path is a normalised one')
    .optional(),
});

export const proxy = z.strictObject({
  listeners: z.array(listener).min(1),
  admin: z
    .strictObject({
      address: ipAddress.default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(9901),
      token: z.string().optional(),
    })
    .prefault({}),
  workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default(1),
  /** nginx `set_real_ip_from`: only these peers' X-Forwarded-For / X-Real-IP are believed. */
  trusted_proxies: z.array(cidr).default([]),
  /** nginx `real_ip_recursive`. */
  real_ip_recursive: z.boolean().default(true),
  limits: z
    .strictObject({
      /** Client connections per process; `auto`: below the descriptor limit (proxy connection-limit.ts); 0 = unlimited. */
      max_connections: z.union([z.literal('auto'), z.number().int().min(0)]).default('auto'),
      max_header_size: size.default(16 * 1024),
      max_body_size: size.default(1024 * 1024),
      client_header_timeout: duration.default(60_000),
      client_request_timeout: duration.default(300_000),
      keepalive_timeout: duration.default(75_000),
      /**
       * nginx `keepalive_requests`: requests one client connection may carry (HTTP/2 streams, for an h2 one); the
       * last is answered with `Connection: close` (h2: GOAWAY). Behind IPVS, connections that end now and then are
       * balanced again by the director. 0 = no limit.
       */
      keepalive_requests: z.number().int().min(0).default(1000),
      /** nginx `client_body_timeout`: between two reads of the request body; then 408, never the server's fault. */
      client_body_timeout: duration.default(60_000),
      /** nginx `send_timeout`: between two writes to the client that drain; then the client is closed. */
      send_timeout: duration.default(60_000),
      rate_limit: z.strictObject({ rate: z.number().positive(), burst: z.number().int().min(1) }).optional(),
      /**
       * nginx `limit_conn` keyed by `$binary_remote_addr`: requests (HTTP/2 streams each) one client address may
       * have in flight at once; beyond, 429. 0 = no limit.
       */
      max_concurrent_per_client: z.number().int().min(0).default(0),
      /** nginx `http2_max_concurrent_streams`: streams an HTTP/2 client may have open at once; beyond, REFUSED_STREAM. */
      http2_max_concurrent_streams: z.number().int().min(1).max(65535).default(128),
      /**
       * Client `RST_STREAM`s an HTTP/2 connection may send (a token bucket: `burst`, refilled `rate` per second)
       * before it is closed with GOAWAY (CVE-2023-44487, rapid reset). nghttp2's defaults: nginx has no such knob.
       */
      http2_reset_burst: z.number().int().min(1).default(1000),
      http2_reset_rate: z.number().int().min(1).default(33),
    })
    .prefault({}),
  shutdown_timeout: duration.default(30_000),
  /**
   * `Upgrade` protocols tunneled to the upstream (case-insensitive). A request asking for anything else is
   * proxied as a plain request with `Upgrade` stripped, as nginx does without `proxy_set_header Upgrade`.
   */
  upgrades: z
    .array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\/[!#$%&'*+.^_`|~0-9A-Za-z-]+)?$/, 'not an Upgrade protocol token'))
    .default(['websocket']),
  /**
   * HAProxy `monitor-uri`: a path every data listener answers itself, never forwarded (200 while serving, 503
   * once the node is leaving): what the director's http check of a proxy node probes (docs/proxy.md, Leaving).
   */
  monitor_uri: z
    .string()
    .startsWith('/', 'must start with /')
    .refine((p) => !/[?#\s]/.test(p), 'a path only: no query, fragment or space')
    .optional(),
  /**
   * On SIGTERM (and POST /healthcheck/fail): how long `monitor_uri` answers 503 while the node keeps serving, before
   * the listeners close (HAProxy `grace`, Envoy `--drain-time-s`). `auto`: from the health check of the virtual
   * services whose real servers are this proxy's listeners, else 10 s; 0 without `monitor_uri` (drainDelayMs).
   */
  drain_delay: z.union([z.literal('auto'), duration]).default('auto'),
  access_log: z.boolean().default(true),
  /**
   * nginx `gzip on` and its `gzip_*` settings: responses of the listed types compressed for clients that accept
   * gzip (docs/proxy.md, Compression). Off by default, as in nginx.
   */
  gzip: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** nginx `gzip_comp_level` (its default 1: the most bytes saved per CPU second). */
      level: z.number().int().min(1).max(9).default(1),
      /** nginx `gzip_min_length`: by the response's Content-Length; a response without one is compressed. */
      min_length: size.default(20),
      /** nginx `gzip_types` (media types, no parameters; nginx's own default is text/html only). */
      types: z
        .array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'a media type: type/subtype, no parameters'))
        .min(1)
        .default([
          'text/html',
          'text/css',
          'text/plain',
          'text/xml',
          'text/javascript',
          'application/javascript',
          'application/json',
          'application/xml',
          'application/rss+xml',
          'image/svg+xml',
        ]),
      /** nginx `gzip_vary` (off there): on, so that a shared cache keeps the two forms apart. */
      vary: z.boolean().default(true),
    })
    .prefault({}),
  /**
   * nginx `error_page 502 503 504 /50x.html`: the body of the proxy's own error answers of these statuses, from a
   * file read at start and on reload (docs/proxy.md, Status codes). Upstream answers are passed on as they are.
   */
  error_pages: z
    .array(
      z.strictObject({
        status: z.array(z.number().int().min(400).max(599)).min(1),
        file: z.string().min(1),
        content_type: z.string().min(1).default('text/html; charset=utf-8'),
      }),
    )
    .default([]),
  routes: z.array(route).default([]),
  pools: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'), pool),
});

// ---------------------------------------------------------------- the app servers

/**
 * What the app servers behind the proxy believe (the demo app; any app reading this file). A list of its own: the
 * proxy's `trusted_proxies` names the peers in front of the proxy, and behind IPVS those are the clients themselves.
 */
export const apps = z.strictObject({
  /** Peers whose X-Real-IP the app believes: the proxy nodes only (nginx `set_real_ip_from` on the app's host). */
  trusted_proxies: z.array(cidr).default([]),
});

// ---------------------------------------------------------------- sessions

const redisNode = z.strictObject({ host: z.string().min(1), port: port.default(6379) });

export const sessions = z.strictObject({
  store: z.enum(['redis', 'memory']).default('redis'),
  redis: z
    .strictObject({
      mode: z.enum(['standalone', 'sentinel', 'cluster']).default('standalone'),
      url: z.string().url().optional(),
      nodes: z.array(redisNode).optional(),
      sentinels: z.array(redisNode).optional(),
      master_name: z.string().optional(),
      username: z.string().optional(),
      password: z.string().optional(),
      db: z.number().int().min(0).default(0),
      tls: z.boolean().default(false),
      command_timeout: duration.default(1_000),
    })
    .prefault({}),
  key_prefix: z.string().default('tg:sess:'),
  ttl: duration.default(30 * 60_000),
  rolling: z.boolean().default(true),
  /** Longest life of a session from its creation however often `rolling` renews it; 0 = none. */
  absolute_ttl: duration.default(24 * 3_600_000),
  max_size: size.default(64 * 1024),
  cookie: z
    .strictObject({
      name: z.string().default('tg.sid'),
      http_only: z.boolean().default(true),
      /** Unset: decided by the listeners (sessionCookieSecure): off only when all are plain HTTP on loopback. */
      secure: z.boolean().optional(),
      same_site: z.enum(['strict', 'lax', 'none']).default('lax'),
      path: z.string().default('/'),
      domain: z.string().optional(),
    })
    .prefault({}),
  /** Newest first: the first signs, all verify (rotate by prepending). */
  secrets: z.array(z.string().min(16, 'use at least 16 characters')).min(1),
});

// ---------------------------------------------------------------- telemetry

export const telemetry = z
  .strictObject({
    service_name: z.string().default('tiergate'),
    tracing: z
      .strictObject({
        enabled: z.boolean().default(false),
        // The OTLP exporter settings below have no defaults here: unset, they come from OTEL_EXPORTER_OTLP_* (the
        // OTel SDKs' precedence: code/file first, then the environment, then the spec's defaults; docs/telemetry.md).
        endpoint: z.string().url().optional(),
        protocol: z.enum(['http/protobuf', 'http/json', 'grpc']).optional(),
        /** Sent with every export (an auth token for a collector); these win over OTEL_EXPORTER_OTLP_*HEADERS per name. */
        headers: z
          .record(
            z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not an HTTP header name'),
            z.string().regex(/^[^\r\n\0]*$/, 'a header value has no CR, LF or NUL'),
          )
          .default({}),
        compression: z.enum(['gzip', 'none']).optional(),
        /** One export, retries included (OTEL_EXPORTER_OTLP_TIMEOUT). */
        timeout: duration.optional(),
        /** PEM files: the CA that signs the collector's certificate, and a client certificate + key (mutual TLS). */
        tls: z
          .strictObject({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional() })
          .refine((t) => (t.cert === undefined) === (t.key === undefined), {
            message: 'cert and key go together (a client certificate needs its private key)',
            path: ['cert'],
          })
          .optional(),
        sampling_ratio: z.number().min(0).max(1).default(1),
        /** Continue incoming traceparent from any client (default: only from trusted proxies). */
        trust_incoming: z.boolean().default(false),
        /** http/protobuf: send from a thread of its own (`auto`, the default: yes; docs/telemetry.md). */
        export_thread: z.union([z.literal('auto'), z.boolean()]).default('auto'),
        resource_attributes: z.record(z.string(), z.string()).default({}),
      })
      .prefault({}),
    metrics: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
    logs: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') }).prefault({}),
  })
  .prefault({});

// ---------------------------------------------------------------- the file

export const tiergateConfigSchema = z.strictObject({
  version: z.literal(1),
  directors: z.array(director).default([]),
  virtual_services: z.array(virtualService).default([]),
  proxy: proxy.optional(),
  apps: apps.optional(),
  sessions: sessions.optional(),
  telemetry,
});

export type TiergateConfig = z.output<typeof tiergateConfigSchema>;
export type VirtualServiceConfig = z.output<typeof virtualService>;
export type RealServerConfig = z.output<typeof realServer>;
export type DirectorConfig = z.output<typeof director>;
export type ProxyConfig = z.output<typeof proxy>;
export type AppsConfig = z.output<typeof apps>;
export type PoolConfig = z.output<typeof pool>;
export type UpstreamServerConfig = z.output<typeof upstreamServer>;
export type RouteConfig = z.output<typeof route>;
export type ListenerConfig = z.output<typeof listener>;
export type ListenerTlsConfig = z.output<typeof listenerTls>;
export type L4HealthCheckConfig = z.output<typeof l4HealthCheck>;
export type L7HealthCheckConfig = z.output<typeof l7HealthCheck>;
export type SessionsConfig = z.output<typeof sessions>;
export type TelemetryConfig = z.output<typeof telemetry>;

import type { DeepReadonly, PoolConfig } from '@tiergate/config';
import type { HealthCheckSpec, StatusRange, TlsFiles } from '@tiergate/health';

type L7Check = DeepReadonly<NonNullable<PoolConfig['health_check']>>;

function statusRange(s: number | string): StatusRange {
  if (typeof s === 'number') return [s, s];
  return [Number(s.slice(0, 3)), Number(s.slice(4))];
}

/**
 * A pool's `health_check` (config shape) as the health package's spec, with its port override. `tlsFiles` are the
 * pool's `tls_ca` / `tls_certificate` contents, used by TLS checks as by the pool's requests (nginx plus health
 * checks use the location's `proxy_ssl_*` settings too): a server that requires a client certificate gets it.
 */
export function healthSpecOf(check: L7Check, tlsFiles?: TlsFiles): HealthCheckSpec & { readonly port?: number } {
  const files = tlsFiles === undefined ? {} : { tlsFiles };
  const timing = { intervalMs: check.interval, timeoutMs: check.timeout, rise: check.rise, fall: check.fall, jitter: check.jitter };
  const port = check.port === undefined ? {} : { port: check.port };
  if (check.type === 'tcp') return { kind: 'tcp', ...timing, ...port };
  if (check.type === 'command') return { kind: 'command', argv: [...check.command], ...timing, ...port };
  if (check.type === 'grpc')
    return { kind: 'grpc', service: check.service, tls: check.tls, rejectUnauthorized: check.tls_verify, ...files, ...timing, ...port };
  return {
    kind: check.type,
    path: check.path,
    ...(check.host === undefined ? {} : { host: check.host }),
    expectStatus: check.expect_status.map(statusRange),
    ...(check.body_match === undefined ? {} : { bodyMatch: check.body_match }),
    rejectUnauthorized: check.tls_verify,
    ...(check.type === 'https' ? files : {}),
    ...timing,
    ...port,
  };
}

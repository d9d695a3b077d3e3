import { TgError } from '@tiergate/errors';

/** Connect, then close at once (keepalived TCP_CHECK, HAProxy `check` without an option). */
export interface TcpCheckSpec {
  readonly kind: 'tcp';
}

/**
 * TLS settings passed to tls.connect: `ca` replaces Node's bundled CAs; `cert` + `key` are presented to the server;
 * `servername` is the SNI and the name verified (an http check's `host`, when set, wins).
 */
export interface TlsFiles {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
}

/** An inclusive range of HTTP status codes, e.g. `[200, 399]`. */
export type StatusRange = readonly [number, number];

/** GET a path and judge status and, optionally, the body (keepalived HTTP_GET / SSL_GET, nginx-plus `match`). */
export interface HttpCheckSpec {
  readonly kind: 'http' | 'https';
  /** Request target, starting with '/'. */
  readonly path: string;
  /** Host header (and TLS SNI for https). Defaults to `host:port` of the target. */
  readonly host?: string;
  /** Healthy statuses; default `[[200, 399]]`. */
  readonly expectStatus?: readonly StatusRange[];
  /** Healthy only if the first `maxBodyBytes` of the body contain this string or match this regex. */
  readonly bodyMatch?: string | RegExp;
  /** How much of the body is read at most (default 64 KiB); reading stops there. */
  readonly maxBodyBytes?: number;
  /** https only: verify the server certificate (default true). Self-signed backends need `false`. */
  readonly rejectUnauthorized?: boolean;
  /** https only: the CAs to verify against and a client certificate to present (a pool's `tls_*` files). */
  readonly tlsFiles?: TlsFiles;
  /** Extra request headers (e.g. a check token). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Run a program; exit 0 is healthy (keepalived MISC_CHECK). */
export interface CommandCheckSpec {
  readonly kind: 'command';
  /** Program and arguments; run without a shell. TG_CHECK_HOST / TG_CHECK_PORT name the target. */
  readonly argv: readonly string[];
  /** keepalived `misc_dynamic`: exit 2..255 is healthy with weight = code - 2. */
  readonly dynamicWeight?: boolean;
  /**
   * The user the command runs as (its primary group too; keepalived MISC_CHECK `user`). Default: `nobody` when
   * this process is root (keepalived's `script_user` advice: a check never needs root), else this process's user.
   */
  readonly user?: string;
}

/** `grpc.health.v1.Health/Check` over HTTP/2 (nginx plus `health_check type=grpc`, Envoy `grpc_health_check`). */
export interface GrpcCheckSpec {
  readonly kind: 'grpc';
  /** The service asked about; '' (default) is the server as a whole. */
  readonly service?: string;
  /** h2 over TLS instead of cleartext h2c (default false). */
  readonly tls?: boolean;
  /** `tls` only: verify the server certificate (default true). Self-signed backends need `false`. */
  readonly rejectUnauthorized?: boolean;
  /** `tls` only: the CAs to verify against and a client certificate to present (a pool's `tls_*` files). */
  readonly tlsFiles?: TlsFiles;
}

/** What to probe; the union the checker registry is keyed by. */
export type CheckerSpec = TcpCheckSpec | HttpCheckSpec | CommandCheckSpec | GrpcCheckSpec;

/** The spec type of one kind (`SpecOf<'https'>` is HttpCheckSpec). */
export type SpecOf<K extends CheckerSpec['kind']> = CheckerSpec extends infer S
  ? S extends { readonly kind: infer SK }
    ? K extends SK
      ? S
      : never
    : never
  : never;

/** When to probe and how results become up/down. */
export interface CheckTiming {
  /** Time from the end of one check to the start of the next. */
  readonly intervalMs: number;
  /** Bound on one check (connect + response + body, or the command's run time). */
  readonly timeoutMs: number;
  /** Consecutive successes that bring a down target up. */
  readonly rise: number;
  /** Consecutive failures that take an up target down. */
  readonly fall: number;
  /** Fraction in [0, 1): each interval is scaled by a random factor in [1 - jitter, 1 + jitter). */
  readonly jitter: number;
  /** State of a target before its first checks: 'up' (HAProxy, keepalived default) or 'down' (keepalived `alpha`). */
  readonly initial: 'up' | 'down';
}

/** A complete health check as the config package produces it: what to probe plus (optionally partial) timing. */
export type HealthCheckSpec = CheckerSpec & Partial<CheckTiming>;

/** HAProxy's defaults (inter 2s, rise 2, fall 3), a 1 s timeout and 10% jitter so checks of many targets spread out. */
export const DEFAULT_TIMING: CheckTiming = Object.freeze({
  intervalMs: 2000,
  timeoutMs: 1000,
  rise: 2,
  fall: 3,
  jitter: 0.1,
  initial: 'up',
});

/** Fills in defaults and rejects impossible timing with TG_CONFIG_INVALID (the schema should have caught it first). */
export function resolveTiming(spec: Partial<CheckTiming>): CheckTiming {
  const t: CheckTiming = {
    intervalMs: spec.intervalMs ?? DEFAULT_TIMING.intervalMs,
    timeoutMs: spec.timeoutMs ?? DEFAULT_TIMING.timeoutMs,
    rise: spec.rise ?? DEFAULT_TIMING.rise,
    fall: spec.fall ?? DEFAULT_TIMING.fall,
    jitter: spec.jitter ?? DEFAULT_TIMING.jitter,
    initial: spec.initial ?? DEFAULT_TIMING.initial,
  };
  const problems: string[] = [];
  if (!(t.intervalMs > 0)) problems.push('intervalMs must be > 0');
  if (!(t.timeoutMs > 0)) problems.push('timeoutMs must be > 0');
  if (!Number.isInteger(t.rise) || t.rise < 1) problems.push('rise must be an integer >= 1');
  if (!Number.isInteger(t.fall) || t.fall < 1) problems.push('fall must be an integer >= 1');
  if (!(t.jitter >= 0 && t.jitter < 1)) problems.push('jitter must be in [0, 1)');
  if (t.initial !== 'up' && t.initial !== 'down') problems.push("initial must be 'up' or 'down'");
  if (problems.length > 0) invalid(`health check timing: ${problems.join('; ')}`, problems);
  return Object.freeze(t);
}

/** Throws the config error every spec validation in this package uses. */
export function invalid(message: string, details?: unknown): never {
  throw new TgError('TG_CONFIG_INVALID', message, { details });
}

import type { ErrorCode } from '@tiergate/errors';
import { NEXT } from './upstream-pool.ts';

/** How one upstream failure counts: the code the client sees, the `retries.on` bit, passive-health fault. */
export interface FailureKind {
  readonly code: ErrorCode;
  /** NEXT.error or NEXT.timeout (the nginx proxy_next_upstream condition it meets). */
  readonly bit: number;
  /** False when undici refused the request itself: the server never saw it, so it is not counted failed. */
  readonly serverFault: boolean;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'EHOSTDOWN']);
const RESET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);

/**
 * undici's refusals of the request it was given (a header it will not send, a body whose length does not match
 * its Content-Length): raised before or while writing, whatever the server. Counting them against the server
 * let a few crafted requests take a whole pool down (a repeated Host did, before it was answered 400 up front).
 */
const REQUEST_CODES = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH']);

const CONNECT_TIMEOUT: FailureKind = { code: 'TG_PROXY_UPSTREAM_CONNECT_TIMEOUT', bit: NEXT.timeout, serverFault: true };
const TIMEOUT: FailureKind = { code: 'TG_PROXY_UPSTREAM_TIMEOUT', bit: NEXT.timeout, serverFault: true };
const CONNECT: FailureKind = { code: 'TG_PROXY_UPSTREAM_CONNECT', bit: NEXT.error, serverFault: true };
const RESET: FailureKind = { code: 'TG_PROXY_UPSTREAM_RESET', bit: NEXT.error, serverFault: true };
const OTHER: FailureKind = { code: 'TG_PROXY_UPSTREAM_ERROR', bit: NEXT.error, serverFault: true };
const REQUEST: FailureKind = { code: 'TG_PROXY_BAD_REQUEST', bit: 0, serverFault: false };

/** Classifies an error undici reported for an attempt (nginx: error / timeout / invalid_header). */
export function classifyUpstreamError(err: unknown): FailureKind {
  const e = err as { code?: string; syscall?: string } | null;
  const code = e?.code ?? '';
  if (REQUEST_CODES.has(code)) return REQUEST;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return CONNECT_TIMEOUT;
  // TG_UPSTREAM_SEND_TIMEOUT: the exchange's `timeouts.send` (nginx proxy_send_timeout, a `timeout` there too).
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'TG_UPSTREAM_SEND_TIMEOUT') return TIMEOUT;
  if (CONNECT_CODES.has(code) || e?.syscall === 'connect') return CONNECT;
  if (RESET_CODES.has(code)) return RESET;
  return OTHER;
}

import { channel } from 'node:diagnostics_channel';

/** diagnostics_channel: one message per finished client request (`RequestEvent`). */
export const REQUEST_CHANNEL = 'tiergate:proxy:request';
/** diagnostics_channel: one message per upstream attempt (`AttemptEvent`). */
export const ATTEMPT_CHANNEL = 'tiergate:proxy:attempt';

/**
 * A finished client request, with what an access log needs. `error` is the TgError code when the proxy
 * answered or cut it. Times are the proxy's `now()` (ms since the epoch with the default clock).
 */
export interface RequestEvent {
  /** X-Request-Id: the client's when sane, else generated; sent upstream and back to the client. */
  readonly requestId: string;
  /** When the request arrived. */
  readonly time: number;
  readonly method: string;
  /** The request target as sent (path and query). */
  readonly url: string;
  /** `url` without the query. */
  readonly path: string;
  /** `1.1`, `1.0`. */
  readonly httpVersion: string;
  readonly host: string | undefined;
  /** The client as trusted-proxy processing determined it (what rate limits and ip_hash use). */
  readonly clientAddress: string;
  /** The TCP peer. */
  readonly peerAddress: string;
  readonly userAgent: string | undefined;
  readonly referer: string | undefined;
  readonly pool: string | undefined;
  /** Address of the server that answered, if any. */
  readonly upstream: string | undefined;
  /** Every server tried, in order (nginx `$upstream_addr`). */
  readonly upstreams: readonly string[];
  readonly status: number;
  /** Response body bytes written to the client (for a tunnel: every byte sent to the client after the 101). */
  readonly bytesSent: number;
  /** Request body bytes forwarded upstream. */
  readonly bytesReceived: number;
  readonly attempts: number;
  /** Time spent in upstream attempts, summed (nginx `$upstream_response_time`, total). */
  readonly upstreamDurationMs: number;
  /** Arrival to the end of the response (for a tunnel: to its close). */
  readonly durationMs: number;
  readonly error: string | undefined;
  /** The client went away before the response was complete. */
  readonly aborted: boolean;
  /** The connection was switched (101) and tunnelled. */
  readonly upgraded: boolean;
}

/** One attempt against one server; `error` is the failure's code (undici/system), `retried` whether another follows. */
export interface AttemptEvent {
  readonly requestId: string;
  readonly pool: string;
  readonly upstream: string;
  readonly attempt: number;
  readonly status: number;
  readonly error: string | undefined;
  readonly failed: boolean;
  readonly durationMs: number;
}

export const requestChannel = channel(REQUEST_CHANNEL);
export const attemptChannel = channel(ATTEMPT_CHANNEL);

import { channel } from 'node:diagnostics_channel';

/** diagnostics_channel: one message per finished client request (`RequestEvent`). */
export const REQUEST_CHANNEL = 'tiergate:proxy:request';
/** diagnostics_channel: one message per upstream attempt (`AttemptEvent`). */
export const ATTEMPT_CHANNEL = 'tiergate:proxy:attempt';

/** A finished client request. `error` is the TgError code when the proxy answered or cut it. */
export interface RequestEvent {
  readonly method: string;
  readonly url: string;
  readonly host: string | undefined;
  readonly clientAddress: string;
  readonly pool: string | undefined;
  /** Address of the server that answered, if any. */
  readonly upstream: string | undefined;
  readonly status: number;
  readonly attempts: number;
  readonly durationMs: number;
  readonly error: string | undefined;
  /** The client went away before the response was complete. */
  readonly aborted: boolean;
}

/** One attempt against one server; `error` is the failure's code (undici/system), `retried` whether another follows. */
export interface AttemptEvent {
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

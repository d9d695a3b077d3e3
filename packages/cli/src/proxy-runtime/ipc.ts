import type { ErrorCode } from '@tiergate/errors';
import type { BoundAddress, MetricsJson, ProxySection, WorkerSnapshot } from '@tiergate/proxy';

/** An error as it crosses the IPC channel (a TgError's code and message; never a stack). */
export interface WireError {
  readonly code: ErrorCode;
  readonly message: string;
}

/** Primary → worker. */
export type ToWorker =
  /** `ticketKeys`: each listener's session ticket key (base64, 48 bytes) or null (listener-tls.ts TicketKeyRotation). */
  | { readonly t: 'start'; readonly section: ProxySection; readonly version: number; readonly ticketKeys: readonly (string | null)[] }
  /** A rotated ticket key for the listener at `index`: every worker gets the same, so any resumes any worker's tickets. */
  | { readonly t: 'ticketKeys'; readonly index: number; readonly keys: string }
  | { readonly t: 'reload'; readonly id: number; readonly section: ProxySection; readonly version: number }
  | { readonly t: 'snapshot'; readonly id: number }
  /** Liveness: a worker that does not answer in time is wedged and replaced. */
  | { readonly t: 'ping'; readonly id: number }
  /** Fail (or pass again) the health check: `monitor_uri` answers 503 (ProxyServer#failHealthCheck). */
  | { readonly t: 'health'; readonly id: number; readonly failing: boolean }
  | { readonly t: 'shutdown' };

/** Worker → primary. */
export type FromWorker =
  | { readonly t: 'hello' }
  | { readonly t: 'ready'; readonly addresses: BoundAddress[] }
  | { readonly t: 'failed'; readonly error: WireError }
  | { readonly t: 'reloaded'; readonly id: number; readonly error?: WireError }
  | { readonly t: 'pong'; readonly id: number }
  | { readonly t: 'healthSet'; readonly id: number }
  | { readonly t: 'snapshot'; readonly id: number; readonly snapshot: WorkerSnapshot; readonly metrics: MetricsJson };

/** Tags our messages so they are told apart from node's own cluster messages. */
export function isFromWorker(m: unknown): m is FromWorker {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}

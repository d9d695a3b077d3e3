import { randomFillSync } from 'node:crypto';
import type { IdGenerator } from '@opentelemetry/sdk-trace';

/** Hex characters drawn per refill: 8 KiB of randomness, i.e. ~170 trace + span id pairs. */
const POOL_BYTES = 8192;
const ALL_ZERO_TRACE_ID = '0'.repeat(32);
const ALL_ZERO_SPAN_ID = '0'.repeat(16);

/**
 * Trace and span ids cut from a pool of cryptographically random hex, refilled in 8 KiB steps.
 *
 * Why not the SDK's RandomIdGenerator: it draws every id from Math.random four bytes at a time and hex-encodes a
 * shared buffer per id; in the proxy at 1 % sampling that was a third of what tracing cost per request (every
 * request gets ids, sampled or not). Here an id is a substring of one hex string (O(1), no encoding), and the ids
 * come from the CSPRNG, which W3C Trace Context's "random trace id" flag and the OTel spec's consistent
 * probability sampling (the rightmost 56 bits must be uniformly random) both assume.
 */
export class PooledRandomIdGenerator implements IdGenerator {
  readonly #bytes = Buffer.allocUnsafe(POOL_BYTES);
  #hex = '';
  #pos = 0;
  #reused: string | undefined;

  generateTraceId(): string {
    const reused = this.#reused;
    if (reused !== undefined) {
      this.#reused = undefined;
      return reused;
    }
    const id = this.#take(32);
    // All zeros is the invalid id (W3C §3.2.2.3): one chance in 2^128, still never handed out.
    return id === ALL_ZERO_TRACE_ID ? this.generateTraceId() : id;
  }

  /**
   * Makes the next generateTraceId() return `traceId` again: the head-sampling tracer (head-sampling.ts) draws a
   * root's trace id to decide on it, and hands it back for the SDK to build the kept span with.
   */
  reuse(traceId: string): void {
    this.#reused = traceId;
  }

  generateSpanId(): string {
    const id = this.#take(16);
    return id === ALL_ZERO_SPAN_ID ? this.generateSpanId() : id;
  }

  #take(chars: number): string {
    if (this.#pos + chars > this.#hex.length) {
      randomFillSync(this.#bytes);
      this.#hex = this.#bytes.toString('hex');
      this.#pos = 0;
    }
    const id = this.#hex.slice(this.#pos, this.#pos + chars);
    this.#pos += chars;
    return id;
  }
}

/** Token-bucket parameters: `rate` tokens per second refill a bucket of `burst` tokens. */
export interface RateLimit {
  readonly rate: number;
  readonly burst: number;
}

/** Buckets kept at most; beyond it the oldest one is forgotten (it restarts full). */
export const DEFAULT_MAX_BUCKETS = 100_000;

interface Bucket {
  tokens: number;
  /** `now()` of the last refill. */
  at: number;
}

/**
 * Per-key token buckets (nginx `limit_req` without a queue: a request over the limit is refused at once).
 * Pure: the clock is a parameter of every call. Memory is bounded: a bucket that has refilled to `burst`
 * is the same as no bucket, so idle ones are swept, and the map never holds more than `maxBuckets`
 * (when full, the oldest bucket is forgotten first).
 *
 * A known key's bucket is refilled in place, never deleted and re-added to keep a recency order: a Map with a
 * delete and a set per request rebuilds its table every few thousand requests, and V8 links each dead table to
 * its successor, so after the first mark-compact every scavenge promoted the live table and its entries and the
 * proxy stayed in back-to-back mark-compacts (found for the set of requests in flight: loadtest/README.md).
 */
export class TokenBucketLimiter {
  readonly limit: RateLimit;
  readonly maxBuckets: number;
  readonly #buckets = new Map<string, Bucket>();
  /** Time for an empty bucket to become full again, ms: after it, a bucket is idle. */
  readonly #fullAfterMs: number;
  #nextSweep = Number.NEGATIVE_INFINITY;

  constructor(limit: RateLimit, maxBuckets = DEFAULT_MAX_BUCKETS) {
    this.limit = limit;
    this.maxBuckets = maxBuckets;
    this.#fullAfterMs = (limit.burst / limit.rate) * 1000;
  }

  /** Buckets currently held. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one token for `key`. Returns 0 when the request may pass, else the milliseconds until a
   * token will be available (for `Retry-After`).
   */
  take(key: string, now: number): number {
    if (now >= this.#nextSweep) this.#sweep(now);
    const { rate, burst } = this.limit;
    let b = this.#buckets.get(key);
    if (b) {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
      b.at = now;
    } else {
      if (this.#buckets.size >= this.maxBuckets) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: burst, at: now };
      this.#buckets.set(key, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / rate);
  }

  /** Drops buckets that are full by now; runs at most once per refill period (at least 1 s apart). */
  #sweep(now: number): void {
    this.#nextSweep = now + Math.max(1000, this.#fullAfterMs);
    for (const [key, b] of this.#buckets) if (now - b.at >= this.#fullAfterMs) this.#buckets.delete(key);
  }
}

/** How often counts that fell to 0 are dropped, ms. */
const SWEEP_EVERY_MS = 10_000;
/** Entries above which a sweep runs at once (a flood of distinct addresses between two sweeps). */
const SWEEP_ABOVE = 100_000;

/**
 * Requests in flight per client address (`limits.max_concurrent_per_client`, nginx `limit_conn` keyed by
 * `$binary_remote_addr`). Pure: the clock is a parameter. An address whose count fell to 0 keeps its entry until
 * the next sweep (at least SWEEP_EVERY_MS apart): a Map that gains and loses an entry per request rebuilds its
 * table every few thousand requests, and V8 keeps each dead table linked to its successor, which made every
 * scavenge promote the live table (rate-limiter.ts and InFlight say the same). Counts are mutated in place.
 */
export class ClientConcurrency {
  readonly #counts = new Map<string, { n: number }>();
  #nextSweep = Number.NEGATIVE_INFINITY;

  /** Entries held (addresses with requests in flight, and idle ones not yet swept). */
  get size(): number {
    return this.#counts.size;
  }

  /** Counts one more request of `address` and returns true, or returns false when it already has `max` in flight. */
  acquire(address: string, max: number, now: number): boolean {
    if (now >= this.#nextSweep || this.#counts.size > SWEEP_ABOVE) this.#sweep(now);
    let c = this.#counts.get(address);
    if (c === undefined) {
      c = { n: 0 };
      this.#counts.set(address, c);
    }
    if (c.n >= max) return false;
    c.n++;
    return true;
  }

  /** Ends one request acquire() counted (its entry cannot have been swept: its count was above 0). */
  release(address: string): void {
    const c = this.#counts.get(address);
    if (c !== undefined && c.n > 0) c.n--;
  }

  #sweep(now: number): void {
    this.#nextSweep = now + SWEEP_EVERY_MS;
    for (const [address, c] of this.#counts) if (c.n === 0) this.#counts.delete(address);
  }
}

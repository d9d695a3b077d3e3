import { makeBalancer, newPeerTable } from './balancer-base.ts';
import type { PeerTable, Tier } from './peer-state.ts';
import type { AttemptOutcome, BalancerFactory, PickRequest } from './types.ts';

/** Time constant of the moving average (linkerd2-proxy's default decay). */
export const EWMA_DEFAULT_DECAY_MS = 10_000;
/** Latency assumed for a server with no measurement yet (linkerd2-proxy's default RTT estimate). */
export const EWMA_DEFAULT_LATENCY_MS = 30;
/**
 * A failed attempt counts as at least this many default latencies, so a server that fails fast does
 * not look fast and draw more traffic (the "black hole" of pure latency balancing).
 */
const FAILURE_PENALTY_FACTOR = 10;

/** Peak-EWMA latency per server (Finagle PeakEwma / tower's peak_ewma). */
class PeakEwma {
  readonly estimate: Float64Array;
  readonly stamp: Float64Array;
  readonly measured: Uint8Array;
  readonly decayMs: number;
  readonly defaultMs: number;

  constructor(n: number, decayMs: number, defaultMs: number) {
    this.estimate = new Float64Array(n);
    this.stamp = new Float64Array(n);
    this.measured = new Uint8Array(n);
    this.decayMs = decayMs;
    this.defaultMs = defaultMs;
  }

  /** The estimate decayed toward 0 since its last update (observing a 0 ms sample now, as tower does). */
  current(i: number, now: number): number {
    if (this.measured[i] === 0) return this.defaultMs;
    const elapsed = Math.max(0, now - this.stamp[i]!);
    return this.estimate[i]! * Math.exp(-elapsed / this.decayMs);
  }

  /** A sample above the estimate replaces it (peak); a lower one is averaged in with time-based weight. */
  observe(i: number, sampleMs: number, now: number): void {
    const decayed = this.current(i, now);
    if (this.measured[i] === 0 || sampleMs > decayed) {
      this.estimate[i] = sampleMs;
    } else {
      const w = Math.exp(-Math.max(0, now - this.stamp[i]!) / this.decayMs);
      this.estimate[i] = this.estimate[i]! * w + sampleMs * (1 - w);
    }
    this.measured[i] = 1;
    this.stamp[i] = now;
  }
}

/**
 * `ewma`: power of two choices over the tier's usable servers, each costed as
 * peak-EWMA latency × (active + 1) / weight (weight with slow start); the cheaper wins, the first
 * drawn on ties. Unmeasured servers cost the default latency.
 */
export const createEwma: BalancerFactory = (servers, options) => {
  const table = newPeerTable('ewma', servers);
  const ewma = new PeakEwma(
    servers.length,
    options.ewmaDecayMs ?? EWMA_DEFAULT_DECAY_MS,
    options.ewmaDefaultLatencyMs ?? EWMA_DEFAULT_LATENCY_MS,
  );
  const usable = new Int32Array(servers.length);
  const cost = (i: number, now: number) => (ewma.current(i, now) * (table.active[i]! + 1)) / table.weightAt(i, now);

  const select = (tier: Tier, req: PickRequest, now: number): number => {
    const n = collectUsable(table, tier, req, now, usable);
    if (n <= 1) return n === 1 ? usable[0]! : -1;
    const a = Math.floor(options.random() * n);
    let b = Math.floor(options.random() * (n - 1));
    if (b >= a) b++;
    const ia = usable[a]!;
    const ib = usable[b]!;
    return cost(ib, now) < cost(ia, now) ? ib : ia;
  };

  const onRelease = (i: number, outcome: AttemptOutcome, now: number) => {
    const sample = outcome.failed
      ? Math.max(outcome.latencyMs, FAILURE_PENALTY_FACTOR * ewma.defaultMs, 2 * ewma.current(i, now))
      : outcome.latencyMs;
    ewma.observe(i, sample, now);
  };
  return makeBalancer('ewma', table, select, onRelease);
};

function collectUsable(table: PeerTable, tier: Tier, req: PickRequest, now: number, out: Int32Array): number {
  let n = 0;
  for (let k = 0; k < tier.members.length; k++) {
    const i = tier.members[k]!;
    if (table.usable(i, req, now)) out[n++] = i;
  }
  return n;
}

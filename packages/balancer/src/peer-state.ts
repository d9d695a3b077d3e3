/**
 * Per-server state shared by every algorithm: active connections, nginx's passive health
 * (`fails`, `accessed`, `checked` of ngx_http_upstream_rr_peer_t), the smooth weighted round robin
 * weights (`effective_weight`, `current_weight`), the active-health verdict and the slow-start ramp.
 *
 * Passive health follows ngx_http_upstream_round_robin.c (nginx 1.2x):
 * - a server is unusable while `maxFails > 0 && fails >= maxFails && now - checked <= failTimeout`;
 * - picking a server sets `checked = now` when `now - checked > failTimeout`, so once the timeout has
 *   passed exactly one request probes it (the probe makes it unusable again until it ends);
 * - a failed attempt does `fails++`, `accessed = checked = now` and lowers `effective_weight` by
 *   `trunc(weight / maxFails)` (C integer division), never below 0;
 * - a successful attempt resets `fails` when `accessed < checked` (the server was picked after its
 *   last failure and after a fail_timeout window ended).
 * - a pool of one primary and no backups ignores passive health and slow start (nginx's
 *   `peers->single`: "such a server will never be considered unavailable").
 *
 * When no server is usable, only because of passive failures or otherwise, pick() returns -1 and
 * nothing is reset: that is what nginx 1.2x does (ngx_http_upstream_get_round_robin_peer returns
 * NGX_BUSY, logged as "no live upstreams", the client gets 502). Old nginx (the 1.0-era "all peers
 * failed, mark them as live for quick recovery" loop) reset every `fails` to 0 at that point; current
 * nginx dropped it, and so do we: servers come back one probe at a time once fail_timeout has passed
 * since their last check, instead of the whole pool being hammered again at once.
 *
 * Storage is typed arrays indexed by server so the hot path allocates nothing.
 */
import type { PickRequest, ServerSpec, ServerState } from './types.ts';

/**
 * A recovering server starts its slow-start ramp at this fraction of its weight (nginx plus ramps
 * from zero, but a zero weight would never be chosen by smooth weighted round robin).
 */
export const SLOW_START_FLOOR = 0.1;

/** Server indices of one tier (primaries or backups), in config order, with their static weight sum. */
export interface Tier {
  readonly members: Int32Array;
  /** Sum of static weights of all members, down ones included (nginx `peers->total_weight`). */
  readonly totalWeight: number;
}

/** The member that owns weight slot `w` in [0, totalWeight) (nginx's `while (w >= peer->weight)` walk). */
export function walkByWeight(servers: readonly ServerSpec[], tier: Tier, w: number): number {
  const members = tier.members;
  let k = 0;
  while (w >= servers[members[k]!]!.weight) {
    w -= servers[members[k]!]!.weight;
    k++;
  }
  return members[k]!;
}

function tierOf(servers: readonly ServerSpec[], backup: boolean): Tier {
  const idx: number[] = [];
  let total = 0;
  servers.forEach((s, i) => {
    if (s.backup !== backup) return;
    idx.push(i);
    total += s.weight;
  });
  return { members: Int32Array.from(idx), totalWeight: total };
}

/** The mutable state of one pool's servers; one instance per Balancer. */
export class PeerTable {
  readonly servers: readonly ServerSpec[];
  readonly primaries: Tier;
  readonly backups: Tier;
  /** nginx `peers->single`: passive health and slow start are ignored. */
  readonly single: boolean;
  readonly active: Int32Array;
  readonly fails: Int32Array;
  readonly accessed: Float64Array;
  readonly checked: Float64Array;
  readonly healthy: Uint8Array;
  /** When the slow-start ramp began (-Infinity: never, the server runs at full weight). */
  readonly recoveredAt: Float64Array;
  /** nginx `effective_weight` (integer arithmetic as in C). */
  readonly effectiveWeight: Float64Array;
  /** nginx `current_weight` of smooth weighted round robin. */
  readonly currentWeight: Float64Array;

  constructor(servers: readonly ServerSpec[]) {
    const n = servers.length;
    this.servers = servers;
    this.primaries = tierOf(servers, false);
    this.backups = tierOf(servers, true);
    this.single = this.primaries.members.length === 1 && this.backups.members.length === 0;
    this.active = new Int32Array(n);
    this.fails = new Int32Array(n);
    // -Infinity rather than nginx's 0 so behaviour does not depend on where the clock starts.
    this.accessed = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
    this.checked = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
    this.healthy = new Uint8Array(n).fill(1);
    this.recoveredAt = new Float64Array(n).fill(Number.NEGATIVE_INFINITY);
    this.effectiveWeight = Float64Array.from(servers, (s) => s.weight);
    this.currentWeight = new Float64Array(n);
  }

  /** Passive health: failures reached max_fails and fail_timeout has not passed since the last check. */
  passiveFailed(i: number, now: number): boolean {
    const s = this.servers[i]!;
    return !this.single && s.maxFails > 0 && this.fails[i]! >= s.maxFails && now - this.checked[i]! <= s.failTimeoutMs;
  }

  /** Usable regardless of this request: not down, healthy, not passively failed, below max_conns. */
  available(i: number, now: number): boolean {
    const s = this.servers[i]!;
    if (s.down || this.healthy[i] === 0) return false;
    if (s.maxConns > 0 && this.active[i]! >= s.maxConns) return false;
    return !this.passiveFailed(i, now);
  }

  /** Usable for this request: available and not already tried by it. */
  usable(i: number, req: PickRequest, now: number): boolean {
    return !req.tried.has(i) && this.available(i, now);
  }

  /** Slow-start multiplier in [SLOW_START_FLOOR, 1]. */
  slowStartFactor(i: number, now: number): number {
    const ms = this.servers[i]!.slowStartMs;
    if (ms <= 0 || this.single) return 1;
    const elapsed = now - this.recoveredAt[i]!;
    if (elapsed >= ms) return 1;
    return Math.max(elapsed / ms, SLOW_START_FLOOR);
  }

  /** Static weight scaled by slow start (used where nginx compares by `weight`). */
  weightAt(i: number, now: number): number {
    return this.servers[i]!.weight * this.slowStartFactor(i, now);
  }

  /**
   * One step of nginx's smooth weighted round robin for a candidate (ngx_http_upstream_get_peer's
   * loop body): adds its effective weight to current_weight, lets effective_weight recover by 1,
   * and returns what it added (the caller sums it into `total`).
   */
  swrrAccumulate(i: number, now: number): number {
    const eff = this.effectiveWeight[i]! * this.slowStartFactor(i, now);
    this.currentWeight[i] = this.currentWeight[i]! + eff;
    if (this.effectiveWeight[i]! < this.servers[i]!.weight) this.effectiveWeight[i] = this.effectiveWeight[i]! + 1;
    return eff;
  }

  /** Counts a pick as an active attempt (nginx `conns++` and the probe's `checked = now`). */
  begin(i: number, now: number): void {
    this.active[i] = this.active[i]! + 1;
    if (now - this.checked[i]! > this.servers[i]!.failTimeoutMs) this.checked[i] = now;
  }

  /** Ends an attempt (ngx_http_upstream_free_round_robin_peer). */
  end(i: number, failed: boolean, now: number): void {
    // A release without a pick is a broken invariant in the caller: crash rather than drift.
    if (this.active[i]! <= 0) throw new RangeError(`balancer: release of server ${i} without an active pick`);
    this.active[i] = this.active[i]! - 1;
    if (this.single) return;
    const s = this.servers[i]!;
    if (failed) {
      this.fails[i] = this.fails[i]! + 1;
      this.accessed[i] = now;
      this.checked[i] = now;
      if (s.maxFails > 0) this.effectiveWeight[i] = this.effectiveWeight[i]! - Math.trunc(s.weight / s.maxFails);
      if (this.effectiveWeight[i]! < 0) this.effectiveWeight[i] = 0;
      return;
    }
    if (this.accessed[i]! < this.checked[i]!) {
      if (s.maxFails > 0 && this.fails[i]! >= s.maxFails) this.recoveredAt[i] = now;
      this.fails[i] = 0;
    }
  }

  /** Active health verdict; a server turning healthy starts its slow-start ramp. */
  setHealthy(i: number, healthy: boolean, now: number): void {
    if (healthy && this.healthy[i] === 0) this.recoveredAt[i] = now;
    this.healthy[i] = healthy ? 1 : 0;
  }

  state(i: number, now: number): ServerState {
    return {
      active: this.active[i]!,
      healthy: this.healthy[i] === 1,
      failed: this.passiveFailed(i, now),
      fails: this.fails[i]!,
      effectiveWeight: this.effectiveWeight[i]! * this.slowStartFactor(i, now),
    };
  }
}

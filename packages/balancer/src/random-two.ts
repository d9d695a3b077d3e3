import { makeBalancer, newPeerTable } from './balancer-base.ts';
import type { PeerTable, Tier } from './peer-state.ts';
import { pickSmoothWeighted } from './smooth-weighted.ts';
import type { BalancerFactory } from './types.ts';

const MAX_TRIES = 20;

/** Start of each member's weight range (nginx `ranges[k].range`), for the weighted draw. */
function rangesOf(table: PeerTable, tier: Tier): Float64Array {
  const ranges = new Float64Array(tier.members.length);
  let sum = 0;
  tier.members.forEach((i, k) => {
    ranges[k] = sum;
    sum += table.servers[i]!.weight;
  });
  return ranges;
}

/** ngx_http_upstream_peek_random_peer: a member drawn with probability weight / total_weight. */
function peek(tier: Tier, ranges: Float64Array, random: () => number): number {
  const x = Math.floor(random() * tier.totalWeight);
  let i = 0;
  let j = ranges.length;
  while (j - i > 1) {
    const k = (i + j) >>> 1;
    if (x < ranges[k]!) j = k;
    else i = k;
  }
  return tier.members[i]!;
}

/**
 * `random_two`: nginx `random two least_conn` (ngx_http_upstream_get_random2_peer). Two distinct
 * usable servers are drawn by static weight; the one with fewer active attempts per unit of weight
 * wins, the second drawn on ties. Unusable or repeated draws count as tries; after 20, or with
 * fewer than two servers in the tier, the pick falls back to smooth weighted round robin.
 */
export const createRandomTwo: BalancerFactory = (servers, options) => {
  const table = newPeerTable('random_two', servers);
  const primaryRanges = rangesOf(table, table.primaries);
  const backupRanges = rangesOf(table, table.backups);
  const active = table.active;
  return makeBalancer('random_two', table, (tier, req, now) => {
    if (tier.members.length < 2) return pickSmoothWeighted(table, tier, req, now);
    const ranges = tier === table.primaries ? primaryRanges : backupRanges;
    let prev = -1;
    for (let tries = 0; tries <= MAX_TRIES; tries++) {
      const i = peek(tier, ranges, options.random);
      if (i === prev || !table.usable(i, req, now)) continue;
      if (prev < 0) {
        prev = i;
        continue;
      }
      return active[i]! * table.weightAt(prev, now) > active[prev]! * table.weightAt(i, now) ? prev : i;
    }
    return pickSmoothWeighted(table, tier, req, now);
  });
};

import { makeBalancer, newPeerTable } from './balancer-base.ts';
import type { PeerTable, Tier } from './peer-state.ts';
import type { BalancerFactory, PickRequest } from './types.ts';

/**
 * ngx_http_upstream_get_least_conn_peer: the usable server with the fewest active attempts per
 * unit of weight (compared by cross-multiplication, conns_a * w_b < conns_b * w_a, so no division),
 * ties broken by smooth weighted round robin among the tied servers, starting from the first tied.
 * Weights include the slow-start ramp.
 */
function pickLeastConn(table: PeerTable, tier: Tier, req: PickRequest, now: number): number {
  const members = tier.members;
  const active = table.active;
  let best = -1;
  let bestPos = 0;
  let bestWeight = 0;
  let many = false;
  for (let k = 0; k < members.length; k++) {
    const i = members[k]!;
    if (!table.usable(i, req, now)) continue;
    const w = table.weightAt(i, now);
    if (best < 0 || active[i]! * bestWeight < active[best]! * w) {
      best = i;
      bestPos = k;
      bestWeight = w;
      many = false;
    } else if (active[i]! * bestWeight === active[best]! * w) {
      many = true;
    }
  }
  if (best < 0 || !many) return best;
  return breakTie(table, members, bestPos, req, now);
}

/** The `many` branch of nginx's least_conn: smooth weighted round robin over the tied servers. */
function breakTie(table: PeerTable, members: Int32Array, from: number, req: PickRequest, now: number): number {
  const active = table.active;
  const current = table.currentWeight;
  const first = members[from]!;
  const firstWeight = table.weightAt(first, now);
  let best = first;
  let total = 0;
  for (let k = from; k < members.length; k++) {
    const i = members[k]!;
    if (!table.usable(i, req, now)) continue;
    if (active[i]! * firstWeight !== active[first]! * table.weightAt(i, now)) continue;
    total += table.swrrAccumulate(i, now);
    if (current[i]! > current[best]!) best = i;
  }
  current[best] = current[best]! - total;
  return best;
}

/** `least_conn`: nginx's weighted least connections. */
export const createLeastConn: BalancerFactory = (servers) => {
  const table = newPeerTable('least_conn', servers);
  return makeBalancer('least_conn', table, (tier, req, now) => pickLeastConn(table, tier, req, now));
};

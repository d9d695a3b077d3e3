import type { PeerTable, Tier } from './peer-state.ts';
import type { PickRequest } from './types.ts';

/**
 * nginx's smooth weighted round robin over one tier (ngx_http_upstream_get_peer): every usable
 * server adds its effective weight to its current weight, the largest current weight wins (the
 * first one on ties) and loses the total. Returns the server index or -1. Shared by `weighted` and
 * by the hash algorithms' fallback, exactly as nginx's modules fall back to
 * ngx_http_upstream_get_round_robin_peer.
 */
export function pickSmoothWeighted(table: PeerTable, tier: Tier, req: PickRequest, now: number): number {
  const members = tier.members;
  const current = table.currentWeight;
  let best = -1;
  let total = 0;
  for (let k = 0; k < members.length; k++) {
    const i = members[k]!;
    if (!table.usable(i, req, now)) continue;
    total += table.swrrAccumulate(i, now);
    if (best < 0 || current[i]! > current[best]!) best = i;
  }
  if (best >= 0) current[best] = current[best]! - total;
  return best;
}

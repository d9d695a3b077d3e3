import { makeBalancer, newPeerTable } from './balancer-base.ts';
import type { BalancerFactory } from './types.ts';

/**
 * `round_robin`: plain rotation over the usable servers of a tier, weights ignored. The cursor
 * moves past the chosen server, so a skipped (unusable) server does not shift the others' turns.
 */
export const createRoundRobin: BalancerFactory = (servers) => {
  const table = newPeerTable('round_robin', servers);
  const cursors = new Int32Array(2); // [primaries, backups]
  return makeBalancer('round_robin', table, (tier, req, now) => {
    const members = tier.members;
    const n = members.length;
    const t = tier === table.primaries ? 0 : 1;
    for (let k = 0; k < n; k++) {
      const pos = (cursors[t]! + k) % n;
      const i = members[pos]!;
      if (!table.usable(i, req, now)) continue;
      cursors[t] = (pos + 1) % n;
      return i;
    }
    return -1;
  });
};

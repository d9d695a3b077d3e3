import { makeBalancer, newPeerTable } from './balancer-base.ts';
import { pickSmoothWeighted } from './smooth-weighted.ts';
import type { BalancerFactory } from './types.ts';

/**
 * `weighted`: nginx's default smooth weighted round robin (5,1,1 → a a b a c a a), with
 * effective_weight lowered on failures and recovering by 1 per pick as nginx does.
 */
export const createWeightedRoundRobin: BalancerFactory = (servers) => {
  const table = newPeerTable('weighted', servers);
  return makeBalancer('weighted', table, (tier, req, now) => pickSmoothWeighted(table, tier, req, now));
};

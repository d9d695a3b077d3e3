import { TgError } from '@tiergate/errors';
import { createEwma } from './ewma.ts';
import { createHash } from './hash.ts';
import { createIpHash } from './ip-hash.ts';
import { createLeastConn } from './least-conn.ts';
import { createRandomTwo } from './random-two.ts';
import { createRoundRobin } from './round-robin.ts';
import type { AlgorithmName, Balancer, BalancerFactory, BalancerOptions, ServerSpec } from './types.ts';
import { createWeightedRoundRobin } from './weighted-round-robin.ts';

/** Every algorithm by its config name; the keys equal ALGORITHMS (a test checks it). */
export const BALANCERS: Readonly<Record<AlgorithmName, BalancerFactory>> = Object.freeze({
  round_robin: createRoundRobin,
  weighted: createWeightedRoundRobin,
  ip_hash: createIpHash,
  hash: createHash,
  least_conn: createLeastConn,
  random_two: createRandomTwo,
  ewma: createEwma,
});

/**
 * Creates the balancer of a pool. Throws TgError TG_CONFIG_INVALID for an unknown algorithm or a
 * server list no valid config can produce (bad weight, duplicate address, …).
 */
export function createBalancer(algorithm: AlgorithmName, servers: readonly ServerSpec[], options: BalancerOptions): Balancer {
  const factory = Object.hasOwn(BALANCERS, algorithm) ? BALANCERS[algorithm] : undefined;
  if (!factory) throw new TgError('TG_CONFIG_INVALID', `unknown balancing algorithm "${algorithm}"`, { details: { algorithm } });
  return factory(servers, options);
}

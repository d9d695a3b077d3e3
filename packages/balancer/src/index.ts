// Public surface of @tiergate/balancer.
export { validateServers } from './balancer-base.ts';
export { ConsistentHashRing, POINTS_PER_WEIGHT, splitHostPort } from './consistent-hash-ring.ts';
export { EWMA_DEFAULT_DECAY_MS, EWMA_DEFAULT_LATENCY_MS } from './ewma.ts';
export { parseIpInto } from './ip-address.ts';
export { compileKeyTemplate, type KeyFunction, type KeyVars } from './key-template.ts';
export { PeerTable, SLOW_START_FLOOR, type Tier } from './peer-state.ts';
export { BALANCERS, createBalancer } from './registry.ts';
export * from './types.ts';

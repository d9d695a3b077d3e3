// Public surface of @tiergate/balancer.
export { validateServers } from './balancer-base.ts';
export { EWMA_DEFAULT_DECAY_MS, EWMA_DEFAULT_LATENCY_MS } from './ewma.ts';
export { compileKeyTemplate, type KeyFunction, type KeyVars } from './key-template.ts';
export { SLOW_START_FLOOR } from './peer-state.ts';
export { BALANCERS, createBalancer } from './registry.ts';
export * from './types.ts';

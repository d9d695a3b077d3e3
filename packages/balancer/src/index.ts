// Public surface of @tiergate/balancer (filled in by its implementation).
export * from './types.ts';

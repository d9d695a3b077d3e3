// Public surface of @tiergate/health (filled in by its implementation).
export * from './types.ts';

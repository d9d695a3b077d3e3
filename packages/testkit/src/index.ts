// Public surface of @tiergate/testkit (filled in by its implementation).
export * from './redis/index.ts';

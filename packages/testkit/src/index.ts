// Public surface of @tiergate/testkit (filled in by its implementation).

export * from './otlp/index.ts';
export * from './promtool.ts';
export * from './redis/index.ts';
export * from './vm/index.ts';

// The file node:cluster runs in each forked worker (primary.ts). Plain JavaScript on purpose, as bin/tiergate.js:
// a worker whose every TypeScript module is in Node's compile cache then strips none itself, so it never loads
// Node's type stripper (amaro, 16-18 MiB of RSS for the worker's lifetime; compile-cache.ts).
import { runWorker } from './worker.ts';

runWorker();

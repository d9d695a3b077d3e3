import { createRequire } from 'node:module';

/**
 * node:http, loaded with require() instead of an ESM import. Node builds a builtin's ESM namespace by reading every
 * export once, and node:http's `WebSocket`, `CloseEvent` and `MessageEvent` are getters that load Node's own bundled
 * undici (763 KB of source: its fetch, WebSocket, llhttp): 2.3 MiB more heap and 13 MiB more RSS in every process
 * that imports node:http as ESM, proxy workers included, for classes the proxy never uses (it has the npm undici).
 * Through require() those getters stay lazy (nodejs/node#59686). Types still come from `import type … 'node:http'`.
 * test/proxy-builtins.test.ts fails if a proxy process loads Node's undici again.
 */
export const http: typeof import('node:http') = createRequire(import.meta.url)('node:http');

import { createRequire } from 'node:module';
import type * as Undici from 'undici';

/**
 * The three parts of undici the proxy uses, required from their own modules rather than through undici's entry
 * point. `undici`'s index loads all of undici (fetch, WebSocket, EventSource, its cache, its mocks: 110 modules,
 * 1.3 MB of source) and node's worker_threads, stream/web, dns and console with them. In a bare node 24 process that
 * is +5.3 MB of live heap and +26 MiB of RSS, against +2.4 MB and +14 MiB for these modules (22 of them); a proxy
 * process keeps what it loads for its whole life, and each MB of its live heap is about 2 MB of its peak
 * (`--heap-growing-percent=100`, cli proxy-runtime/v8-flags.ts). The paths are undici's own layout, at the version
 * the lockfile pins (http1-server.ts takes llhttp from there too); test/proxy-builtins.test.ts checks that a
 * serving proxy never loads undici's index, so an upgrade that moves one of these fails there. Only `dispatch` is
 * used: the request/stream/upgrade methods are what undici's index adds to every dispatcher.
 */
const require = createRequire(import.meta.url);
export const Pool: typeof Undici.Pool = require('undici/lib/dispatcher/pool.js');
export type Pool = Undici.Pool;
export const errors: typeof Undici.errors = require('undici/lib/core/errors.js');
export const buildConnector: typeof Undici.buildConnector = require('undici/lib/core/connect.js');

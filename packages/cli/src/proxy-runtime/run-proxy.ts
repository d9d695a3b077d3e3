import { availableParallelism } from 'node:os';
import { drainDelayMs } from '@tiergate/config';
import type { ProxySection } from '@tiergate/proxy';
import pino, { type Logger } from 'pino';
import { warmCompileCache } from './compile-cache.ts';
import { hupReloads } from './hup.ts';
import { Primary } from './primary.ts';
import { loadReload, type ProxyFile } from './proxy-file.ts';
import { serveSingle } from './single.ts';
import { execServeImage, type SinglePlan } from './single-image.ts';
import { proxyExecArgv, proxyMallocEnv } from './v8-flags.ts';

/** `workers: auto` is one per CPU the process may use. */
export function workerCount(workers: ProxySection['workers']): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** Worker environment variable carrying the file's `telemetry` section (JSON): each worker starts its own SDK. */
export const TELEMETRY_ENV = 'TIERGATE_TELEMETRY';

/**
 * Runs the proxy of `file` (as `read` from it) until SIGTERM/SIGINT: for one worker, in this process re-executed as the serving image
 * (single-image.ts, single-entry.js), as a node:cluster primary with N workers otherwise. Resolves after a clean
 * drain. Tracing (`telemetry.tracing`) runs where requests are served: in the serving process for one worker, in
 * each worker otherwise (the primary serves none); spans are flushed after the drain. Telemetry settings are read
 * at start only: a reload does not change them.
 */
export async function runProxy(file: string, read: ProxyFile, log: Logger): Promise<void> {
  const { config, section } = read;
  const hup = hupReloads(() => log.warn('SIGHUP before the proxy was ready: ignored'));
  try {
    const n = workerCount(section.workers);
    const settings = config.telemetry;
    const delayMs = drainDelayMs(config);
    // The serving processes' flags: this process's plus the proxy's V8 flags (a single process re-executes with them),
    // so they find every module compiled and never load the type stripper.
    const cache = warmCompileCache(proxyExecArgv(process.execArgv, process.env.NODE_OPTIONS), log);
    if (n <= 1) {
      const plan: SinglePlan = { file, section, telemetry: settings, drainDelayMs: delayMs, logLevel: log.level };
      // Lines still buffered in the logger would go with this image.
      flushSync(log);
      // Returns only where it could not re-execute: this process serves then.
      execServeImage(plan, (msg, err) => log.warn({ error: (err as Error)?.message }, msg));
      return await serveSingle(plan, log, hup.onReload, loadReload);
    }
    // The workers' malloc settings: the primary serves nothing, so it keeps glibc's defaults.
    const workerEnv = {
      ...proxyMallocEnv(process.env),
      [TELEMETRY_ENV]: JSON.stringify(settings),
      // Workers do not run the launcher, which enables the cache in this process.
      ...(cache === undefined ? {} : { NODE_COMPILE_CACHE: cache.dir }),
    };
    const primary = new Primary(file, section, n, log, workerEnv, delayMs, settings.metrics.enabled);
    await primary.start();
    await primary.run(hup.onReload);
  } finally {
    hup.dispose();
  }
}

/** Writes out what `log` (logger.ts: an asynchronous destination) still buffers. */
function flushSync(log: Logger): void {
  (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym]?.flushSync?.();
}

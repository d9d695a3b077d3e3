import { availableParallelism } from 'node:os';
import { drainDelayMs, loadConfigFile } from '@tiergate/config';
import type { ProxySection } from '@tiergate/proxy';
import type { Logger } from 'pino';
import { startCommandTelemetry } from '../process-telemetry.ts';
import { warmCompileCache } from './compile-cache.ts';
import { Primary } from './primary.ts';
import { runSingle } from './single.ts';
import { proxyExecArgv, proxyMallocEnv, reexecWithProxySettings } from './v8-flags.ts';

/** `workers: auto` is one per CPU the process may use. */
export function workerCount(workers: ProxySection['workers']): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** Worker environment variable carrying the file's `telemetry` section (JSON): each worker starts its own SDK. */
export const TELEMETRY_ENV = 'TIERGATE_TELEMETRY';

/**
 * Runs the proxy of `file` until SIGTERM/SIGINT: in this process for one worker, as a node:cluster
 * primary with N workers otherwise. Resolves after a clean drain. Tracing (`telemetry.tracing`) runs
 * where requests are served: in this process for one worker, in each worker otherwise (the primary
 * serves none); spans are flushed after the drain. Telemetry settings are read at start only: a reload
 * does not change them.
 */
export async function runProxy(file: string, section: ProxySection, log: Logger): Promise<void> {
  // Installed first: without a handler a SIGHUP during startup would kill the process (its default action).
  let reload: (() => void) | undefined;
  const onHup = () => (reload ? reload() : log.warn('SIGHUP before the proxy was ready: ignored'));
  process.on('SIGHUP', onHup);
  const onReload = (fn: () => void) => {
    reload = fn;
  };
  try {
    const n = workerCount(section.workers);
    const config = await loadConfigFile(file);
    const settings = config.telemetry;
    const delayMs = drainDelayMs(config);
    // The serving processes' flags: this process's plus the proxy's V8 flags (a single process re-executes with them).
    const cache = warmCompileCache(proxyExecArgv(process.execArgv, process.env.NODE_OPTIONS), log);
    if (n <= 1) {
      // Also when this process had to strip TypeScript and nothing is missing (the proxy's flags given on node's
      // command line): the new image finds the cache warm and does not keep the type stripper while it serves.
      reexecWithProxySettings(cache?.warmed === true);
      const telemetry = await startCommandTelemetry(settings, 'proxy', log);
      try {
        return await runSingle(file, section, log, onReload, settings.tracing.trust_incoming, delayMs, settings.metrics.enabled);
      } finally {
        await telemetry.shutdown();
      }
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
    await primary.run(onReload);
  } finally {
    process.off('SIGHUP', onHup);
  }
}

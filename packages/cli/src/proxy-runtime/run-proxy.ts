import { availableParallelism } from 'node:os';
import type { ProxySection } from '@tiergate/proxy';
import type { Logger } from 'pino';
import { Primary } from './primary.ts';
import { runSingle } from './single.ts';

/** `workers: auto` is one per CPU the process may use. */
export function workerCount(workers: ProxySection['workers']): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/**
 * Runs the proxy of `file` until SIGTERM/SIGINT: in this process for one worker, as a node:cluster
 * primary with N workers otherwise. Resolves after a clean drain.
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
    if (n <= 1) return await runSingle(file, section, log, onReload);
    const primary = new Primary(file, section, n, log);
    await primary.start();
    await primary.run(onReload);
  } finally {
    process.off('SIGHUP', onHup);
  }
}

import type { Logger } from 'pino';

/** What stopSignal resolves with for an operator's stop (the fatal path resolves with the error's kind). */
export function isStopSignal(reason: string): boolean {
  return reason === 'SIGTERM' || reason === 'SIGINT';
}

/**
 * The drain delay of a leaving proxy (`proxy.drain_delay`, drainDelayMs): the health check already fails and the
 * listeners still serve; resolves after `ms`, or at once on a second SIGTERM/SIGINT (an operator who wants the node
 * gone now, as nginx's fast shutdown). While it runs a signal must have a listener: without one, node's default
 * action for the second SIGTERM would kill the process mid-request.
 */
export async function drainDelay(ms: number, log: Pick<Logger, 'info'>): Promise<void> {
  if (ms <= 0) return;
  log.info({ drainDelayMs: ms }, 'health check failing: serving until the director has quiesced this node');
  let timer: NodeJS.Timeout | undefined;
  let skip: (() => void) | undefined;
  await new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    skip = () => {
      log.info({}, 'second stop signal: ending the drain delay');
      resolve();
    };
    process.on('SIGTERM', skip);
    process.on('SIGINT', skip);
  });
  clearTimeout(timer);
  process.off('SIGTERM', skip!);
  process.off('SIGINT', skip!);
}

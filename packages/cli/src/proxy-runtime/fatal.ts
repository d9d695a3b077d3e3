import type { Logger } from 'pino';

/** Added to shutdown_timeout: how long a process that had an uncaught error may take to drain and exit. */
export const FATAL_MARGIN_MS = 5_000;

/** The code of a thrown value: a TgError's or node's `code` (EADDRINUSE, ERR_…), else its class name. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' || typeof code === 'number') return String(code);
  return err instanceof Error ? err.name : typeof err;
}

/**
 * Resolves (with `uncaughtException` or `unhandledRejection`) on the first error nothing caught, so the
 * process can drain like on SIGTERM and exit 1 instead of dying mid-request (node's default for both).
 * The state after such an error is not trusted for long: `graceMs` after it the process exits 1 whatever
 * the drain is doing. Each error, later ones included, is logged once with its code and stack.
 */
export function fatalError(log: Logger, graceMs: () => number): Promise<string> {
  return new Promise((resolve) => {
    let first = true;
    const on = (kind: 'uncaughtException' | 'unhandledRejection') => (err: unknown) => {
      const error = { code: errorCode(err), message: String((err as Error)?.message ?? err), stack: (err as Error)?.stack };
      log.fatal({ kind, error }, first ? `${kind}: draining, then exiting 1` : `${kind} while draining`);
      if (!first) return;
      first = false;
      process.exitCode = 1;
      // unref: a drain that ends lets the process exit by itself (with exitCode 1) before the deadline.
      setTimeout(() => {
        log.flush();
        process.exit(1);
      }, graceMs()).unref();
      resolve(kind);
    };
    process.on('uncaughtException', on('uncaughtException'));
    process.on('unhandledRejection', on('unhandledRejection'));
  });
}

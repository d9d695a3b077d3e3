import { readFileSync } from 'node:fs';

/**
 * File descriptors kept out of the client budget: stdio, the event loop's own descriptors, listening
 * sockets, the admin listener and its clients, the IPC channel, health checks, log files and the idle
 * keep-alive connections to upstream servers.
 */
export const FD_RESERVE = 128;

/**
 * This process's soft RLIMIT_NOFILE (node raises the soft limit to the hard one at startup), read from
 * /proc/self/limits; Infinity when it is `unlimited` or cannot be read (not Linux).
 */
export function openFileLimit(limitsFile = '/proc/self/limits'): number {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return Number.POSITIVE_INFINITY;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  const n = Number(soft);
  return soft === undefined || !Number.isInteger(n) || n <= 0 ? Number.POSITIVE_INFINITY : n;
}

/**
 * The client connection limit a listener enforces (node's `server.maxConnections`).
 * `limits.max_connections`: a number is taken as it is (`0` = unlimited); `auto` (the default) is half
 * of the descriptors left after FD_RESERVE, because every proxied client connection also holds one to an
 * upstream server. Without it, accept() fails with EMFILE once the descriptors run out, and every
 * descriptor the process then needs (an upstream connection, a log write, a health check) fails too;
 * with it, node closes the excess connections right after accept and the process keeps working.
 */
export function connectionLimit(configured: number | 'auto', nofile: number = openFileLimit()): number {
  if (configured !== 'auto') return configured > 0 ? configured : Number.POSITIVE_INFINITY;
  if (!Number.isFinite(nofile)) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.floor((nofile - FD_RESERVE) / 2));
}

/** The subset of a logger accept errors are reported to. */
interface WarnLogger {
  warn(obj: object, msg?: string): void;
}

/** How often accept errors of one listener are logged at most (a flood repeats them per connection). */
const ACCEPT_ERROR_LOG_MS = 1_000;

/**
 * The `'error'` listener a listening server keeps for its whole life. After `listen()`, node reports a
 * failed accept() (EMFILE/ENFILE when descriptors run out, ENOBUFS, ECONNABORTED…) as an `'error'` event
 * on the server; without a listener that is an uncaught exception that ends the process, with every
 * connection it serves. The listening socket itself stays open (libuv drops the pending connection and
 * keeps polling), so the right answer is to log and keep serving. Logged at most once per second per
 * listener, with how many were not logged since.
 */
export function acceptErrorLogger(log: WarnLogger | undefined, listener: string, now: () => number = Date.now): (err: Error) => void {
  let lastLogged = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return (err) => {
    const t = now();
    if (t - lastLogged < ACCEPT_ERROR_LOG_MS) {
      suppressed++;
      return;
    }
    lastLogged = t;
    const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
    log?.warn({ listener, error: { code, message: err.message }, suppressed }, 'accept failed; still listening');
    suppressed = 0;
  };
}

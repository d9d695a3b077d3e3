import { connect } from 'node:net';
import { deadline, deadlineDetail, errorDetail } from './deadline.ts';
import type { Checker, CheckResult, CheckTarget } from './types.ts';

/**
 * keepalived TCP_CHECK: healthy when a TCP connection is established; the connection is closed at
 * once without sending anything. Failures report the socket error (e.g. ECONNREFUSED) or the timeout.
 */
export class TcpChecker implements Checker {
  readonly kind = 'tcp' as const;

  check(target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const d = deadline(timeoutMs, signal);
    return new Promise<CheckResult>((resolve) => {
      let done = false;
      const finish = (ok: boolean, detail: string) => {
        if (done) return;
        done = true;
        d[Symbol.dispose]();
        d.signal.removeEventListener('abort', onAbort);
        socket.destroy();
        resolve({ ok, detail, durationMs: d.elapsedMs() });
      };
      const onAbort = () => finish(false, deadlineDetail(d, timeoutMs));
      const socket = connect({ host: target.host, port: target.port });
      socket.once('connect', () => finish(true, 'connected'));
      // `on`, not `once`: a late error after finish() must still have a listener or it would crash the process.
      socket.on('error', (err) => finish(false, errorDetail(err)));
      if (d.signal.aborted) onAbort();
      else d.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

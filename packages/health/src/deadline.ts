/**
 * One AbortSignal that fires when either the caller's signal aborts or `timeoutMs` passes, and tells
 * which happened. Every checker uses it so "timeout" and "aborted" read the same in every detail.
 * Hand-written rather than AbortSignal.any + AbortSignal.timeout because those keep the timer (and the
 * listener on a long-lived outer signal) until garbage collection; here `dispose()` clears both at once.
 */
export interface Deadline extends Disposable {
  readonly signal: AbortSignal;
  /** 'timeout' or 'aborted' once the signal fired, else null. */
  readonly reason: 'timeout' | 'aborted' | null;
  /** performance.now() at creation, for durationMs. */
  readonly startedAt: number;
  elapsedMs(): number;
}

export function deadline(timeoutMs: number, outer?: AbortSignal): Deadline {
  const controller = new AbortController();
  let reason: 'timeout' | 'aborted' | null = null;
  const fire = (why: 'timeout' | 'aborted') => {
    if (reason !== null) return;
    reason = why;
    controller.abort(why === 'timeout' ? new DOMException(`timeout after ${timeoutMs} ms`, 'TimeoutError') : outer?.reason);
  };
  const onOuterAbort = () => fire('aborted');
  const timer = setTimeout(() => fire('timeout'), timeoutMs);
  if (outer?.aborted) fire('aborted');
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  const startedAt = performance.now();
  return {
    signal: controller.signal,
    get reason() {
      return reason;
    },
    startedAt,
    elapsedMs: () => Math.round((performance.now() - startedAt) * 1000) / 1000,
    [Symbol.dispose]() {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuterAbort);
    },
  };
}

/** The detail for a check cut short by its deadline. */
export function deadlineDetail(d: Deadline, timeoutMs: number): string {
  return d.reason === 'timeout' ? `timeout after ${timeoutMs} ms` : 'aborted';
}

/** Longest detail kept: /status pages and log lines stay readable. */
const MAX_DETAIL = 160;

/** A short, single-line message for an unexpected error (the code first when Node gives one). */
export function errorDetail(err: unknown): string {
  let text = String(err);
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const msg = err.message.split('\n', 1)[0] ?? '';
    text = code && !msg.includes(code) ? `${code}: ${msg}` : msg || String(code ?? err.name);
  }
  return text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL - 1)}…` : text;
}

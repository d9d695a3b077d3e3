import { type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { isTgError } from '@tiergate/errors';

// A proxy tracer: a no-op until the process registers an SDK (docs/telemetry.md), then real spans.
const tracer = trace.getTracer('@tiergate/session');

/** The span names of the session contract in docs/telemetry.md. */
export type SessionSpanName = 'session load' | 'session take' | 'session save';

/**
 * Runs `work` inside an INTERNAL span that is the active span meanwhile, so the store's Redis commands
 * (made CLIENT spans by the ioredis instrumentation, which reads the active context) group under it,
 * and under the caller's span in turn. The span ends however `work` ends; a failure sets status ERROR
 * and `error.type` (the TG_* code, else the exception's name) and is rethrown unchanged.
 */
export function inSessionSpan<T>(name: SessionSpanName, work: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL }, async (span) => {
    try {
      return await work(span);
    } catch (err) {
      span.setAttribute('error.type', isTgError(err) ? err.code : err instanceof Error ? err.name : 'unknown');
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

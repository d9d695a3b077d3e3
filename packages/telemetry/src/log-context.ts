import { isSpanContextValid, trace } from '@opentelemetry/api';

/** Trace correlation fields for one log line, named as the OpenTelemetry log data model names them. */
export interface LogTraceContext {
  trace_id?: string;
  span_id?: string;
  trace_flags?: string;
}

/**
 * The active span's ids, or `{}` outside a span (or with tracing off). Meant as a pino `mixin`
 * (`pino({ mixin: logContext })`) so every log line written while handling a request can be
 * found from its trace in Jaeger and back.
 */
export function logContext(): LogTraceContext {
  const spanContext = trace.getActiveSpan()?.spanContext();
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return {};
  return {
    trace_id: spanContext.traceId,
    span_id: spanContext.spanId,
    trace_flags: `0${spanContext.traceFlags.toString(16)}`.slice(-2),
  };
}

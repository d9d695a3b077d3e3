import { context as apiContext, type Context, type Span, type SpanOptions, type Tracer, trace } from '@opentelemetry/api';

/**
 * Tracer#startActiveSpan in terms of the tracer's own startSpan, for the tracers tiergate implements
 * (head-sampling.ts, light-tracer.ts). `args` are the API's overloads after the name: (fn), (options, fn),
 * (options, context, fn).
 */
export function startActiveSpan<F extends (span: Span) => unknown>(
  tracer: Pick<Tracer, 'startSpan'>,
  name: string,
  args: readonly unknown[],
): ReturnType<F> {
  const fn = args.at(-1) as F;
  const options = (args.length >= 2 ? args[0] : undefined) as SpanOptions | undefined;
  const parent = (args.length >= 3 ? args[1] : undefined) as Context | undefined;
  const ctx = parent ?? apiContext.active();
  const span = tracer.startSpan(name, options, ctx);
  return apiContext.with(trace.setSpan(ctx, span), fn as (span: Span) => ReturnType<F>, undefined, span);
}

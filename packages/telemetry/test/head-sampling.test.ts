import { context, isSpanContextValid, ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { suppressTracing } from '@opentelemetry/core';
import { ParentBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import { describe, expect, it, onTestFinished } from 'vitest';
import { HeadSamplingTracerProvider } from '../src/sdk/head-sampling.ts';
import { PooledRandomIdGenerator } from '../src/sdk/random-ids.ts';
import { TraceIdThresholdSampler } from '../src/sdk/ratio-sampler.ts';

/** The SDK as tracing-sdk.ts builds it, with a processor that counts the spans the SDK made. */
function setup(ratio: number) {
  const started: string[] = [];
  const ids = new PooledRandomIdGenerator();
  const root = new TraceIdThresholdSampler(ratio);
  const sdk = new TracerProvider({
    sampler: new ParentBasedSampler({ root }),
    idGenerator: ids,
    spanProcessors: [
      {
        onStart: (span) => started.push(span.spanContext().traceId),
        onEnd: () => {},
        forceFlush: async () => {},
        shutdown: async () => {},
      },
    ],
  });
  return { started, root, tracer: new HeadSamplingTracerProvider(sdk, ids, root).getTracer('t') };
}

describe('HeadSamplingTracerProvider', () => {
  it('answers a dropped root without the SDK, with a valid unsampled context that still propagates', () => {
    const { tracer, started } = setup(0);
    const span = tracer.startSpan('root', {}, ROOT_CONTEXT);
    expect(span.isRecording()).toBe(false);
    expect(isSpanContextValid(span.spanContext())).toBe(true);
    expect(span.spanContext().traceFlags).toBe(TraceFlags.NONE);
    expect(started).toEqual([]);
  });

  it('keeps the configured share of roots (not its square): the SDK builds each kept span on the id decided on', () => {
    const { tracer, started, root } = setup(0.5);
    let kept = 0;
    for (let i = 0; i < 4000; i++) {
      const span = tracer.startSpan('root', {}, ROOT_CONTEXT);
      if (span.isRecording()) {
        kept++;
        expect(root.keeps(span.spanContext().traceId)).toBe(true);
      } else expect(root.keeps(span.spanContext().traceId)).toBe(false);
      span.end();
    }
    // Binomial(4000, 0.5): sd ≈ 32; a second, independent draw inside the SDK would keep ~1000.
    expect(Math.abs(kept - 2000)).toBeLessThan(200);
    expect(started).toHaveLength(kept);
  });

  it('leaves children to the SDK (parent-based), and suppressed tracing too', () => {
    const { tracer, started } = setup(1);
    const parent = tracer.startSpan('root', {}, ROOT_CONTEXT);
    const child = tracer.startSpan('child', {}, trace.setSpan(ROOT_CONTEXT, parent));
    expect(child.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(child.isRecording()).toBe(true);
    const unsampledParent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: 'a'.repeat(32),
      spanId: 'b'.repeat(16),
      traceFlags: 0,
      isRemote: true,
    });
    expect(tracer.startSpan('child of unsampled', {}, unsampledParent).isRecording()).toBe(false);
    const suppressed = tracer.startSpan('suppressed', {}, suppressTracing(ROOT_CONTEXT));
    expect(isSpanContextValid(suppressed.spanContext())).toBe(false);
    // `root: true` ignores the parent in the context.
    const newRoot = tracer.startSpan('new root', { root: true }, trace.setSpan(ROOT_CONTEXT, parent));
    expect(newRoot.spanContext().traceId).not.toBe(parent.spanContext().traceId);
    expect(started).toHaveLength(3);
  });

  it('startActiveSpan runs the function with the span active, in each of the API overloads', () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    onTestFinished(() => context.disable());
    const { tracer } = setup(1);
    const seen: boolean[] = [];
    const check = (span: ReturnType<typeof tracer.startSpan>) => {
      seen.push(trace.getSpan(context.active()) === span);
      span.end();
      return 7;
    };
    expect(tracer.startActiveSpan('a', check)).toBe(7);
    expect(tracer.startActiveSpan('b', {}, check)).toBe(7);
    expect(tracer.startActiveSpan('c', {}, ROOT_CONTEXT, check)).toBe(7);
    expect(seen).toEqual([true, true, true]);
  });
});

import {
  context as apiContext,
  type Context,
  type Span,
  type SpanOptions,
  TraceFlags,
  type Tracer,
  type TracerOptions,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import type { PooledRandomIdGenerator } from './random-ids.ts';
import type { TraceIdThresholdSampler } from './ratio-sampler.ts';
import { startActiveSpan } from './start-active-span.ts';

/**
 * The SDK's tracer provider with the root-span decision taken up front: a root span whose trace id the root
 * sampler drops is answered with the API's non-recording span for that id, without entering the SDK.
 *
 * Why: at 1 % sampling 99 % of the proxy's requests start an unsampled root span, and the SDK's startSpan (id
 * generation, links and attributes cleaning, sampler call chain, metrics hooks) cost ~2 µs of a ~50 µs request
 * in place (loadtest/tracing-bench.ts) — most of what the 3 % budget allows. The outcome is the one the SDK
 * reaches: the same deterministic sampler decides on the same trace id (`ids.reuse` hands the drawn id to the
 * SDK's next generateTraceId when the trace is kept), and a dropped root gets a valid, unsampled context that
 * still propagates (`traceparent … -00`), so downstream tiers honour the decision.
 */
export class HeadSamplingTracerProvider implements TracerProvider {
  readonly #sdk: TracerProvider;
  readonly #ids: PooledRandomIdGenerator;
  readonly #root: TraceIdThresholdSampler;
  readonly #tracers = new Map<string, Tracer>();

  constructor(sdk: TracerProvider, ids: PooledRandomIdGenerator, rootSampler: TraceIdThresholdSampler) {
    this.#sdk = sdk;
    this.#ids = ids;
    this.#root = rootSampler;
  }

  getTracer(name: string, version?: string, options?: TracerOptions): Tracer {
    const key = `${name}@${version ?? ''}:${options?.schemaUrl ?? ''}`;
    let tracer = this.#tracers.get(key);
    if (!tracer) {
      tracer = new HeadSamplingTracer(this.#sdk.getTracer(name, version, options), this.#ids, this.#root);
      this.#tracers.set(key, tracer);
    }
    return tracer;
  }
}

class HeadSamplingTracer implements Tracer {
  readonly #sdk: Tracer;
  readonly #ids: PooledRandomIdGenerator;
  readonly #root: TraceIdThresholdSampler;

  constructor(sdk: Tracer, ids: PooledRandomIdGenerator, root: TraceIdThresholdSampler) {
    this.#sdk = sdk;
    this.#ids = ids;
    this.#root = root;
  }

  startSpan(name: string, options?: SpanOptions, context: Context = apiContext.active()): Span {
    const parent = options?.root ? undefined : trace.getSpanContext(context);
    if (parent === undefined || !trace.isSpanContextValid(parent)) {
      if (!isTracingSuppressed(context)) {
        const traceId = this.#ids.generateTraceId();
        if (!this.#root.keeps(traceId))
          return trace.wrapSpanContext({ traceId, spanId: this.#ids.generateSpanId(), traceFlags: TraceFlags.NONE });
        this.#ids.reuse(traceId);
      }
    }
    return this.#sdk.startSpan(name, options, context);
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...args: unknown[]): ReturnType<F> {
    return startActiveSpan<F>(this, name, args);
  }
}

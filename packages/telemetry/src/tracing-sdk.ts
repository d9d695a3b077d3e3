import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { context, diag, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { ParentBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import { TgError } from '@tiergate/errors';
import { installDiagLogger } from './diag-sink.ts';
import { EncodingSpanProcessor } from './exporters/encoding-span-processor.ts';
import { PIPELINES } from './exporters/exporter-registry.ts';
import { resolveOtlpExport } from './exporters/otlp-export-settings.ts';
import type { StartTelemetryOptions, TelemetryHandle, TelemetrySettings } from './options.ts';
import { resourceAttributes } from './resource-attributes.ts';
import { HeadSamplingTracerProvider } from './sdk/head-sampling.ts';
import { LightTracerProvider } from './sdk/light-tracer.ts';
import { PooledRandomIdGenerator } from './sdk/random-ids.ts';
import { TraceIdThresholdSampler } from './sdk/ratio-sampler.ts';

/**
 * Starts the tracing SDK and registers it as the process-wide OpenTelemetry implementation, so
 * every library's `@opentelemetry/api` calls produce real spans. Only startTelemetry imports this
 * module, and only when tracing is enabled.
 */
export async function startTracingSdk(settings: TelemetrySettings, options: StartTelemetryOptions): Promise<TelemetryHandle> {
  const { tracing } = settings;
  const exportSettings = resolveOtlpExport(tracing, options.env ?? process.env, options.exportTimeoutMs);
  const spanProcessor = await PIPELINES[exportSettings.protocol]({
    export: exportSettings,
    exportThread: options.exportThread ?? exportFromThread(tracing.export_thread),
  });
  const attributes = resourceAttributes(settings, options, { hostname: hostname(), defaultInstanceId: randomUUID() });
  const ids = new PooledRandomIdGenerator();
  const rootSampler = new TraceIdThresholdSampler(tracing.sampling_ratio);
  const resource = defaultResource().merge(resourceFromAttributes(attributes));
  const provider = new TracerProvider({
    resource,
    // Parent-based: a request the proxy sampled is traced through every tier, whatever their ratios.
    sampler: new ParentBasedSampler({ root: rootSampler }),
    // Every request gets ids, sampled or not: the pooled generator makes that a substring (random-ids.ts).
    idGenerator: ids,
    spanProcessors: [spanProcessor],
  });
  // What libraries get from the API: with the protobuf pipeline, spans that record straight into its encoder
  // (light-tracer.ts); otherwise the SDK, with dropped roots decided before entering it (head-sampling.ts). The SDK
  // provider owns the processor either way: its shutdown flushes it.
  const apiProvider =
    spanProcessor instanceof EncodingSpanProcessor
      ? new LightTracerProvider(resource, ids, rootSampler, spanProcessor)
      : new HeadSamplingTracerProvider(provider, ids, rootSampler);
  const contextManager = new AsyncLocalStorageContextManager().enable();
  if (options.onDiagnostic) installDiagLogger(options.onDiagnostic);
  const registered = [
    trace.setGlobalTracerProvider(apiProvider) && (() => trace.disable()),
    context.setGlobalContextManager(contextManager) && (() => context.disable()),
    propagation.setGlobalPropagator(
      new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    ) && (() => propagation.disable()),
  ];
  if (registered.includes(false)) {
    // Undo only what we registered: the API refuses to replace another SDK's globals, and so do we.
    for (const undo of registered) if (undo) undo();
    await provider.shutdown();
    throw new TgError('TG_TELEMETRY_SETUP', 'another OpenTelemetry SDK is already registered in this process');
  }

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        await provider.shutdown(); // flushes the batch processor, then shuts the exporter down
      } catch (err) {
        // A collector that is down at exit must not turn a clean shutdown into a crash: the spans
        // are lost either way, so say so and go on.
        options.onDiagnostic?.('error', `flushing spans at shutdown failed: ${(err as Error).message}`);
      } finally {
        unregisterGlobals();
      }
    })();
    return stopping;
  };
  return { enabled: true, shutdown, [Symbol.asyncDispose]: shutdown };
}

/**
 * `export_thread: auto` (the default) sends from the exporter thread, at every ratio. loadtest/tracing-bench.ts,
 * proxy pinned to one core, throughput lost against tracing off (docs/telemetry.md): at 1 % ~1–5 % with the thread
 * and 7.5 % inline (rare exports from the serving thread reshape its hot undici code: worker-exporter.ts); at 100 %,
 * since request buffers go back and forth between the threads instead of being allocated per batch, 13.8 % with
 * the thread and 21.5 % inline (9 rounds, one run), with the same p99 as tracing off. `false` saves the thread's
 * ~25–35 MiB of RSS.
 */
export function exportFromThread(setting: boolean | 'auto'): boolean {
  return setting !== false;
}

function unregisterGlobals(): void {
  trace.disable();
  context.disable();
  propagation.disable();
  diag.disable();
}

import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace';
import type { TelemetryConfig } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import type { OtlpExportSettings } from './otlp-export-settings.ts';

export type TracingProtocol = NonNullable<TelemetryConfig['tracing']['protocol']>;

/** How ended spans are batched and exported. */
export interface PipelineOptions {
  /** Where and how to send (the file's settings merged with OTEL_EXPORTER_OTLP_*). */
  readonly export: OtlpExportSettings;
  /** http/protobuf: export from a worker thread (worker-exporter.ts) rather than the serving thread. */
  readonly exportThread: boolean;
}

/** Makes the span processor (batching + exporter) for one `telemetry.tracing.protocol`, loading its modules lazily. */
export type PipelineFactory = (options: PipelineOptions) => Promise<SpanProcessor>;

/**
 * Batches of 2048 spans (the SDK default is 512, queue 2048): at 100 % sampling the proxy ends ~20k spans/s, and
 * fewer, larger exports cost it less throughput (loadtest/tracing-bench.ts). The queue holds two batches, so one
 * export in flight does not drop the spans ended meanwhile. The delay is the SDK's default.
 */
export const BATCH = { maxExportBatchSize: 2048, maxQueueSize: 4096, scheduledDelayMillis: 5000 } as const;

/**
 * One entry per protocol the config schema accepts. Each loads its exporter package lazily, so a
 * process pays only for the exporter it uses.
 */
export const PIPELINES: Readonly<Record<TracingProtocol, PipelineFactory>> = {
  'http/protobuf': async ({ export: settings, exportThread }) => {
    const { EncodingSpanProcessor } = await import('./encoding-span-processor.ts');
    // Encoded on this thread as spans end; sent from a thread of its own by default (worker-exporter.ts says why).
    const exporter = exportThread
      ? new (await import('./worker-exporter.ts')).WorkerExporter(settings)
      : (await import('./otlp-proto-exporter.ts')).createOtlpProtoExporter(settings);
    return new EncodingSpanProcessor({ exporter, ...BATCH });
  },
  // JSON is for collectors or proxies that want text, not for volume: the SDK's own batch processor and exporter.
  'http/json': async ({ export: settings }) => {
    const { createOtlpJsonExporter } = await import('./otlp-json-exporter.ts');
    return new BatchSpanProcessor({
      exporter: createOtlpJsonExporter(settings),
      exportTimeoutMillis: settings.timeoutMillis,
      ...BATCH,
    });
  },
  // OTLP/gRPC needs @grpc/grpc-js, @grpc/proto-loader and a second protobufjs (~15 packages) for
  // no gain here: Jaeger and the Collector take OTLP/HTTP on 4318. Refused loudly, not downgraded.
  grpc: async () => {
    throw new TgError(
      'TG_TELEMETRY_SETUP',
      "OTLP protocol 'grpc' (telemetry.tracing.protocol or OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL) is not supported by this build; use 'http/protobuf' (port 4318) instead",
    );
  },
};

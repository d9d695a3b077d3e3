import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { TelemetryConfig } from '@tiergate/config';
import { TgError } from '@tiergate/errors';

export type TracingProtocol = TelemetryConfig['tracing']['protocol'];

/** Makes the span exporter for one `telemetry.tracing.protocol`, loading its module only when asked. */
export type ExporterFactory = (tracesUrl: string, timeoutMillis: number) => Promise<SpanExporter>;

/**
 * One entry per protocol the config schema accepts. Each loads its exporter package lazily, so a
 * process pays only for the exporter it uses.
 */
export const EXPORTERS: Readonly<Record<TracingProtocol, ExporterFactory>> = {
  'http/protobuf': async (url, timeout) => (await import('./otlp-proto-exporter.ts')).createOtlpProtoExporter(url, timeout),
  'http/json': async (url, timeout) => (await import('./otlp-json-exporter.ts')).createOtlpJsonExporter(url, timeout),
  // OTLP/gRPC needs @grpc/grpc-js, @grpc/proto-loader and a second protobufjs (~15 packages) for
  // no gain here: Jaeger and the Collector take OTLP/HTTP on 4318. Refused loudly, not downgraded.
  grpc: async () => {
    throw new TgError(
      'TG_TELEMETRY_SETUP',
      "telemetry.tracing.protocol 'grpc' is not supported by this build; use 'http/protobuf' (port 4318) instead",
    );
  },
};

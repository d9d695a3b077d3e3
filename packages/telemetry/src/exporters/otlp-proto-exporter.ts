import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { SpanExporter } from '@opentelemetry/sdk-trace';

/** OTLP/HTTP with binary protobuf bodies: what Jaeger and the Collector take on port 4318. */
export function createOtlpProtoExporter(url: string, timeoutMillis: number): SpanExporter {
  return new OTLPTraceExporter({ url, timeoutMillis });
}

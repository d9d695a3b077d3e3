import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { SpanExporter } from '@opentelemetry/sdk-trace';

/** OTLP/HTTP with JSON bodies (the OTLP/JSON mapping), for collectors or proxies that want text. */
export function createOtlpJsonExporter(url: string, timeoutMillis: number): SpanExporter {
  return new OTLPTraceExporter({ url, timeoutMillis });
}

import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { OtlpExportSettings } from './otlp-export-settings.ts';

/**
 * OTLP/HTTP with JSON bodies (the OTLP/JSON mapping), for collectors or proxies that want text. Every setting is
 * passed explicitly (resolved from the file and OTEL_EXPORTER_OTLP_* by otlp-export-settings.ts), so both protocols
 * read the same configuration with the same precedence; the SDK's own environment fallback then finds nothing to add.
 */
export function createOtlpJsonExporter(settings: OtlpExportSettings): SpanExporter {
  return new OTLPTraceExporter({
    url: settings.url,
    headers: { ...settings.headers },
    compression: settings.compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE,
    timeoutMillis: settings.timeoutMillis,
    // The SDK's default agent keeps connections alive; the TLS options apply to https URLs only (it drops them for http).
    httpAgentOptions: { keepAlive: true, ...settings.tls },
  });
}

import { ExportResultCode } from '@opentelemetry/core';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { EncodedBatch, EncodedBatchExporter } from './encoding-span-processor.ts';

/**
 * OTLP/HTTP with binary protobuf bodies (what Jaeger and the Collector take on port 4318) for batches that
 * EncodingSpanProcessor already encoded: the transport is the OTLP exporter's own (createOtlpHttpExportDelegate,
 * as the OTLPTraceExporter of @opentelemetry/exporter-trace-otlp-proto builds it: retries with backoff, the
 * timeout, OTEL_EXPORTER_OTLP_TRACES_* settings), only the serializer passes the bytes through.
 */
export function createOtlpProtoExporter(url: string, timeoutMillis: number): EncodedBatchExporter {
  const base = new OTLPExporterBase<EncodedBatch[]>(
    createOtlpHttpExportDelegate(
      convertLegacyHttpOptions({ url, timeoutMillis }, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
      {
        serializeRequest: (batches) => (batches.length === 1 ? batches[0]!.body : concat(batches.map((b) => b.body))),
        deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
      },
      'otlp_http_span_exporter',
      { name: 'span', countItems: (batches) => batches.reduce((n, b) => n + b.spans, 0) },
      undefined,
    ),
  );
  return {
    export: (batch) =>
      new Promise((resolve, reject) =>
        base.export([batch], (result) =>
          result.code === ExportResultCode.SUCCESS ? resolve() : reject(result.error ?? new Error('export failed')),
        ),
      ),
    shutdown: () => base.shutdown(),
  };
}

/** Concatenated ExportTraceServiceRequest bodies are one request (protobuf merges repeated fields). */
function concat(bodies: Uint8Array[]): Uint8Array {
  return Buffer.concat(bodies);
}

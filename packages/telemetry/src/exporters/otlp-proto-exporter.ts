import { ExportResultCode } from '@opentelemetry/core';
import {
  createOtlpNetworkExportDelegate,
  getSharedConfigurationDefaults,
  mergeOtlpSharedConfigurationWithDefaults,
  OTLPExporterBase,
} from '@opentelemetry/otlp-exporter-base';
import { createOtlpHttpExporterMetrics } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { EncodedBatch, EncodedBatchExporter } from './encoding-span-processor.ts';
import type { OtlpExportSettings } from './otlp-export-settings.ts';
import { createUndiciTransport } from './undici-transport.ts';

const USER_AGENT = 'tiergate OTel-OTLP-Exporter-JavaScript';

/**
 * OTLP/HTTP with binary protobuf bodies (what Jaeger and the Collector take on port 4318) for batches that
 * EncodingSpanProcessor already encoded. The export delegate is the OTLP exporter's (bounded concurrency, the
 * export timeout, the SDK's export result codes); the serializer passes the bytes through and the transport is
 * undici (undici-transport.ts says why).
 */
export function createOtlpProtoExporter(settings: OtlpExportSettings): EncodedBatchExporter {
  const { url, timeoutMillis } = settings;
  const metricsHelper = { name: 'span' as const, countItems: (batches: EncodedBatch[]) => batches.reduce((n, b) => n + b.spans, 0) };
  const base = new OTLPExporterBase<EncodedBatch[]>(
    createOtlpNetworkExportDelegate(
      mergeOtlpSharedConfigurationWithDefaults({ timeoutMillis }, {}, getSharedConfigurationDefaults()),
      {
        serializeRequest: (batches) => (batches.length === 1 ? batches[0]!.body : Buffer.concat(batches.map((b) => b.body))),
        deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
      },
      createOtlpHttpExporterMetrics('otlp_http_span_exporter', metricsHelper, url, undefined),
      createUndiciTransport({
        url,
        // The configured headers may replace the user-agent, not the content-type (as the SDK's exporters do).
        headers: { 'user-agent': USER_AGENT, ...lowerCaseNames(settings.headers), 'content-type': 'application/x-protobuf' },
        compression: settings.compression,
        tls: settings.tls,
      }),
    ),
  );
  return {
    // An owned body is handed back once its request was answered: the transport's last attempt is over, so nothing
    // reads it any more. After a failure or a timeout an attempt may still be sending it: it is not handed back.
    export: (batch) =>
      new Promise((resolve, reject) =>
        base.export([batch], (result) =>
          result.code === ExportResultCode.SUCCESS
            ? resolve(batch.owned ? (batch.body.buffer as ArrayBuffer) : undefined)
            : reject(result.error ?? new Error('export failed')),
        ),
      ),
    shutdown: () => base.shutdown(),
  };
}

/** Header names are case-insensitive: lower-cased, a configured `Content-Type` meets the exporter's own and loses. */
function lowerCaseNames(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

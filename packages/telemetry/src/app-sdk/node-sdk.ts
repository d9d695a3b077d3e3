import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import {
  defaultResource,
  hostDetector,
  osDetector,
  processDetector,
  type ResourceDetector,
  resourceAttributesEnvDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
  serviceNameEnvDetector,
} from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ParentBasedSampler, type Sampler, type SpanExporter, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace';
import { TgError } from '@tiergate/errors';
import { register, supportsSyncHooks } from 'import-in-the-middle/register-hooks.mjs';
import { installDiagLogger } from '../diag-sink.ts';
import { type OtlpExportSettings, resolveOtlpExport } from '../exporters/otlp-export-settings.ts';
import type { TelemetryHandle, TelemetrySettings } from '../options.ts';
import type { StartAppTelemetryOptions } from './start-app-telemetry.ts';

type Tracing = TelemetrySettings['tracing'];

/**
 * The NodeSDK of an app server, configured the standard way (the SDK reads the OTEL_* environment itself) with
 * tiergate.yaml's `telemetry` section mapped onto it. Precedence, per setting (docs/telemetry.md has the table):
 *
 * - exporter: if the file sets any of `endpoint`, `protocol`, `headers`, `compression`, `timeout`, `tls`, spans go
 *   over OTLP with the file's keys first, then OTEL_EXPORTER_OTLP_TRACES_* / OTEL_EXPORTER_OTLP_*, then the spec's
 *   defaults — the same merge (and validation) as the proxy's exporter (otlp-export-settings.ts), so one file sends
 *   the whole stack to one collector. If it sets none, the SDK builds the exporter from the environment alone
 *   (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*, as for any Node app).
 * - sampler: OTEL_TRACES_SAMPLER (+ _ARG) when set; else parent-based with `sampling_ratio` for roots. The
 *   environment wins here because the file's key always has a value (its default 1 is the spec's default sampler,
 *   parentbased_always_on): the file cannot say "unset". Behind the proxy the parent's sampled flag decides anyway.
 * - resource: the SDK's detectors (process, host, os, a random service.instance.id), under `service.name`
 *   `<service_name>-app` and `service.version`; OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over those;
 *   `resource_attributes` of the file over the environment; `tiergate.tier` and an explicit instance id last.
 * - metrics and logs: none unless OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER ask for them (the file's tracing
 *   section is about traces; the SDK would otherwise push both to the collector, which may not take them).
 * - propagators (W3C trace context + baggage), batch processor, span limits: the SDK's, from OTEL_* as usual.
 */
export async function startNodeSdk(settings: TelemetrySettings, options: StartAppTelemetryOptions): Promise<TelemetryHandle> {
  const env = process.env;
  const tracing = settings.tracing;
  const traceExporter = fileSetsExport(tracing) ? await otlpExporter(resolveOtlpExport(tracing, env)) : undefined;
  // Before the instrumentations exist: they hook the modules imported from now on. ioredis is CommonJS imported from
  // ES modules and node:http is imported as an ES module, so neither passes through `require`: only a loader hook sees
  // them. registerHooks (in-thread, Node >= 24.11.1) is what `node --import` of a preload registering the hook would do.
  if (supportsSyncHooks()) register({ include: ['ioredis', 'http'] }); // 'http' covers node:http too
  const sdk = new NodeSDK({
    resource: defaultResource().merge(
      resourceFromAttributes({ 'service.name': `${settings.service_name}-app`, 'service.version': options.version }),
    ),
    resourceDetectors: [
      serviceInstanceIdDetector,
      processDetector,
      hostDetector,
      osDetector,
      resourceAttributesEnvDetector,
      serviceNameEnvDetector,
      fileDetector(tracing, options.instanceId),
    ],
    ...(traceExporter && { traceExporter }),
    ...(!env.OTEL_TRACES_SAMPLER?.trim() && { sampler: ratioSampler(tracing.sampling_ratio) }),
    ...(!env.OTEL_METRICS_EXPORTER?.trim() && { metricReaders: [] }),
    ...(!env.OTEL_LOGS_EXPORTER?.trim() && { logRecordProcessors: [] }),
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: options.ignoreIncomingRequest }),
      new IORedisInstrumentation({
        // Only under a request's span: the store's connection checks and pings would each start a trace otherwise.
        requireParentSpan: true,
        // The default serializer writes every argument of EVAL/EVALSHA, GET, DEL, …: for a session store that is the
        // session's id and data (a captcha's answer, the user). The command and a `?` per argument, as SQL
        // instrumentations sanitize their statements.
        dbStatementSerializer: (command, args) => [command, ...args.map(() => '?')].join(' '),
      }),
    ],
  });
  // OTEL_LOG_LEVEL gives the SDK its console logger (NodeSDK's constructor did that); otherwise the caller's sink.
  if (!env.OTEL_LOG_LEVEL?.trim() && options.onDiagnostic) installDiagLogger(options.onDiagnostic);
  sdk.start();
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= sdk.shutdown().catch((err: unknown) => {
      // A collector that is down at exit must not turn a clean shutdown into a crash: say so and go on.
      options.onDiagnostic?.('error', `flushing spans at shutdown failed: ${(err as Error).message}`);
    });
    return stopping;
  };
  return { enabled: true, shutdown, [Symbol.asyncDispose]: shutdown };
}

function fileSetsExport(t: Tracing): boolean {
  const keys = [t.endpoint, t.protocol, t.compression, t.timeout, t.tls];
  return keys.some((k) => k !== undefined) || Object.keys(t.headers).length > 0;
}

/** The SDK's own OTLP/HTTP exporters, every setting passed explicitly (so the environment has nothing left to add). */
async function otlpExporter(settings: OtlpExportSettings): Promise<SpanExporter> {
  if (settings.protocol === 'grpc') {
    // The file's settings are the whole stack's, and the proxy cannot send gRPC (exporter-registry.ts). An app
    // configured by the environment alone (OTEL_EXPORTER_OTLP_PROTOCOL=grpc, no exporter keys in the file) can.
    throw new TgError(
      'TG_TELEMETRY_SETUP',
      "OTLP protocol 'grpc' (telemetry.tracing.protocol or OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL) cannot be combined with the file's exporter settings; use 'http/protobuf' (port 4318)",
    );
  }
  const { OTLPTraceExporter } =
    settings.protocol === 'http/json'
      ? await import('@opentelemetry/exporter-trace-otlp-http')
      : await import('@opentelemetry/exporter-trace-otlp-proto');
  return new OTLPTraceExporter({
    url: settings.url,
    headers: { ...settings.headers },
    compression: settings.compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE,
    timeoutMillis: settings.timeoutMillis,
    // The TLS options apply to https URLs only (the SDK drops them for http).
    httpAgentOptions: { keepAlive: true, ...settings.tls },
  });
}

/** Parent-based: a request the proxy sampled is traced here too, one it dropped is not, whatever this ratio. */
function ratioSampler(ratio: number): Sampler {
  return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
}

/** The file's resource attributes (over the environment's), then what is always true of this process. */
function fileDetector(tracing: Tracing, instanceId: string | undefined): ResourceDetector {
  const attributes: Record<string, string> = { ...tracing.resource_attributes, 'tiergate.tier': 'app' };
  if (instanceId !== undefined) attributes['service.instance.id'] = instanceId;
  return { detect: () => ({ attributes }) };
}

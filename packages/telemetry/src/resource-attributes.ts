import type { StartTelemetryOptions, TelemetrySettings } from './options.ts';

/** Facts about the running process that the resource needs; passed in so the function stays pure. */
export interface ProcessFacts {
  hostname: string;
  /** Used as service.instance.id when the options name none. */
  defaultInstanceId: string;
}

/**
 * The resource attributes every span of this process carries. Precedence, lowest first: the
 * computed defaults, then `telemetry.tracing.resource_attributes` from the config file (so an
 * operator may rename the service or add deployment.environment.name), then what the caller
 * passed explicitly (serviceName, instanceId) and `tiergate.tier`, which always tells the truth.
 */
export function resourceAttributes(
  settings: TelemetrySettings,
  options: Pick<StartTelemetryOptions, 'tier' | 'version' | 'serviceName' | 'instanceId'>,
  facts: ProcessFacts,
): Record<string, string> {
  const explicit: Record<string, string> = { 'tiergate.tier': options.tier };
  if (options.serviceName !== undefined) explicit['service.name'] = options.serviceName;
  if (options.instanceId !== undefined) explicit['service.instance.id'] = options.instanceId;
  return {
    'service.name': `${settings.service_name}-${options.tier}`,
    'service.version': options.version,
    'service.instance.id': facts.defaultInstanceId,
    'host.name': facts.hostname,
    ...settings.tracing.resource_attributes,
    ...explicit,
  };
}

/**
 * The URL spans are POSTed to. `tracing.endpoint` is the collector's base URL, as
 * OTEL_EXPORTER_OTLP_ENDPOINT is in the OTLP exporter spec, so `/v1/traces` is appended
 * (`http://127.0.0.1:4318` → `http://127.0.0.1:4318/v1/traces`); a URL already ending in
 * `/v1/traces` is used as it is.
 */
export function otlpTracesUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
}

/**
 * The traces URL spans go to, as the OTLP exporter spec resolves it: `tracing.endpoint` (a base URL, `/v1/traces`
 * appended by otlpTracesUrl), else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL, used as it is), else
 * OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: `v1/traces` appended to its path, even when it has one), else
 * `http://127.0.0.1:4318/v1/traces` (the spec's localhost, as an address: no resolver involved). Not validated here.
 */
export function otlpTracesEndpoint(
  tracing: { readonly endpoint?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
): string {
  if (tracing.endpoint !== undefined) return otlpTracesUrl(tracing.endpoint);
  const signal = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (signal) return signal;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return `${base.replace(/\/+$/, '')}/v1/traces`;
  return 'http://127.0.0.1:4318/v1/traces';
}

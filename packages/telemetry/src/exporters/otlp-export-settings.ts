/**
 * Where and how spans are exported: `telemetry.tracing` merged with the OTLP exporter's environment variables
 * (OpenTelemetry specification, "OpenTelemetry Protocol Exporter", Configuration Options), for both protocols.
 *
 * Precedence, per setting: the config file (tiergate.yaml is the process's code-level configuration, which the OTel
 * SDKs rank above the environment), then the signal-specific variable (`OTEL_EXPORTER_OTLP_TRACES_*`), then the
 * generic one (`OTEL_EXPORTER_OTLP_*`), then the specification's default. Headers are merged per name in that order
 * (as @opentelemetry/otlp-exporter-base does). An endpoint from the file or the generic variable is a base URL that
 * gets `/v1/traces` appended; the signal-specific variable is the full URL, used as it is (the spec's rule).
 *
 * An unusable value is refused with the variable or the config path that holds it, rather than warned about and
 * ignored as the SDKs do: tiergate fails at start, not with spans silently going to the default collector.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseKeyPairsIntoRecord } from '@opentelemetry/core';
import { TgError } from '@tiergate/errors';
import type { TelemetrySettings } from '../options.ts';
import { otlpTracesEndpoint } from '../resource-attributes.ts';

/** The OTLP/HTTP export settings both pipelines use; plain data, so it can be handed to the exporter thread. */
export interface OtlpExportSettings {
  /** Which pipeline sends (exporter-registry.ts); `grpc` is refused there. */
  readonly protocol: TracingProtocol;
  /** The full traces URL (`…/v1/traces`). */
  readonly url: string;
  /** Extra request headers (auth), already merged; content-type and content-encoding are the exporter's own. */
  readonly headers: Readonly<Record<string, string>>;
  readonly compression: 'gzip' | 'none';
  /** One export, retries included. */
  readonly timeoutMillis: number;
  /** PEM texts: a CA to trust instead of the system's, a client certificate and its key (mutual TLS). */
  readonly tls: { readonly ca?: string; readonly cert?: string; readonly key?: string };
}

type Env = Readonly<Record<string, string | undefined>>;
type TracingProtocol = 'http/protobuf' | 'http/json' | 'grpc';
const PROTOCOLS: readonly string[] = ['http/protobuf', 'http/json', 'grpc'] satisfies TracingProtocol[];

/** The spec's default export timeout (10 s). */
export const DEFAULT_TIMEOUT_MILLIS = 10_000;

/**
 * Resolves the export settings. `timeoutOverride` is the caller's programmatic timeout (StartTelemetryOptions),
 * above everything else. Throws TG_TELEMETRY_SETUP naming the variable or path of a value it cannot use, and of a
 * certificate file it cannot read.
 */
export function resolveOtlpExport(
  tracing: TelemetrySettings['tracing'],
  env: Env,
  timeoutOverride?: number,
  readFile: (path: string) => string = (path) => readFileSync(resolve(path), 'utf8'),
): OtlpExportSettings {
  const url = otlpTracesEndpoint(tracing, env);
  if (!/^https?:$/.test(URL.parse(url)?.protocol ?? '')) {
    throw setupError(
      tracing.endpoint === undefined ? endpointVariable(env) : 'telemetry.tracing.endpoint',
      `'${url}' is not an http(s) URL`,
    );
  }
  const pem = (configPath: string, configured: string | undefined, variable: string): string | undefined => {
    const [where, path] = configured !== undefined ? [configPath, configured] : fromEnv(env, variable);
    if (path === undefined) return undefined;
    try {
      return readFile(path);
    } catch (err) {
      throw setupError(where!, `cannot read '${path}': ${(err as Error).message}`);
    }
  };
  const tls = tracing.tls;
  const ca = pem('telemetry.tracing.tls.ca', tls?.ca, 'CERTIFICATE');
  const cert = pem('telemetry.tracing.tls.cert', tls?.cert, 'CLIENT_CERTIFICATE');
  const key = pem('telemetry.tracing.tls.key', tls?.key, 'CLIENT_KEY');
  if ((cert === undefined) !== (key === undefined)) {
    throw setupError('OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', 'a client certificate and its key (…_CLIENT_KEY) go together');
  }
  return {
    protocol: tracing.protocol ?? protocolFromEnv(env) ?? 'http/protobuf',
    url,
    headers: {
      ...headersFromEnv(env, 'OTEL_EXPORTER_OTLP_HEADERS'),
      ...headersFromEnv(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
      ...tracing.headers,
    },
    compression: tracing.compression ?? compressionFromEnv(env) ?? 'none',
    timeoutMillis: timeoutOverride ?? tracing.timeout ?? timeoutFromEnv(env) ?? DEFAULT_TIMEOUT_MILLIS,
    tls: { ...(ca !== undefined && { ca }), ...(cert !== undefined && { cert }), ...(key !== undefined && { key }) },
  };
}

/** `[variable, value]` of OTEL_EXPORTER_OTLP_TRACES_<name>, else of OTEL_EXPORTER_OTLP_<name>, else `[]`. */
function fromEnv(env: Env, name: string): [string, string] | [] {
  for (const variable of [`OTEL_EXPORTER_OTLP_TRACES_${name}`, `OTEL_EXPORTER_OTLP_${name}`]) {
    const value = env[variable]?.trim();
    if (value) return [variable, value];
  }
  return [];
}

function endpointVariable(env: Env): string {
  return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
}

/** The W3C Baggage format the spec gives these variables: `name=value,name2=value2`, values percent-decoded. */
function headersFromEnv(env: Env, variable: string): Record<string, string> {
  const text = env[variable];
  if (!text?.trim()) return {};
  const headers = parseKeyPairsIntoRecord(text);
  for (const [name, value] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) {
      throw setupError(variable, `'${name}' is not a usable HTTP header`);
    }
  }
  return headers;
}

function protocolFromEnv(env: Env): TracingProtocol | undefined {
  const [variable, value] = fromEnv(env, 'PROTOCOL');
  if (value === undefined) return undefined;
  if (PROTOCOLS.includes(value)) return value as TracingProtocol;
  throw setupError(variable!, `'${value}' is not a protocol (http/protobuf, http/json or grpc)`);
}

function compressionFromEnv(env: Env): 'gzip' | 'none' | undefined {
  const [variable, value] = fromEnv(env, 'COMPRESSION');
  if (value === undefined) return undefined;
  if (value === 'gzip' || value === 'none') return value;
  throw setupError(variable!, `'${value}' is not a compression (gzip or none)`);
}

/** Milliseconds, a non-negative integer (the spec's unit for OTEL_EXPORTER_OTLP_TIMEOUT). */
function timeoutFromEnv(env: Env): number | undefined {
  const [variable, value] = fromEnv(env, 'TIMEOUT');
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  throw setupError(variable!, `'${value}' is not a timeout in milliseconds`);
}

function setupError(where: string, what: string): TgError {
  return new TgError('TG_TELEMETRY_SETUP', `${where}: ${what}`);
}

import type { IncomingMessage } from 'node:http';
import { isTgError, TgError } from '@tiergate/errors';
import type { TelemetryHandle, TelemetrySettings } from '../options.ts';

/** What an app process tells startAppTelemetry about itself. */
export interface StartAppTelemetryOptions {
  /** Becomes `service.version`. */
  version: string;
  /** Becomes `service.instance.id` (default: a random UUID per process, the SDK's serviceInstanceIdDetector). */
  instanceId?: string;
  /**
   * Incoming requests that get no span (the HTTP instrumentation's ignoreIncomingRequestHook): health probes, which
   * the proxy sends every few seconds per app and which would bury the requests in Jaeger.
   */
  ignoreIncomingRequest?: (request: IncomingMessage) => boolean;
  /** Receives the SDK's warnings and errors (a failed export) unless OTEL_LOG_LEVEL gives the SDK its own logger. */
  onDiagnostic?: (level: 'warn' | 'error', message: string) => void;
}

const NOOP: TelemetryHandle = { enabled: false, shutdown: async () => {}, [Symbol.asyncDispose]: async () => {} };

/**
 * Starts the standard OpenTelemetry Node SDK (`@opentelemetry/sdk-node`) for an application server behind
 * tiergate: the `node:http` and ioredis instrumentations, W3C trace context, the OTEL_* environment honoured, and
 * `telemetry.tracing` of tiergate.yaml mapped onto it where set (node-sdk.ts has the precedence; docs/telemetry.md
 * too). Call it before the modules it instruments are imported (node:http by the app, ioredis by the session
 * store): it registers an in-thread loader hook that patches them as they load, as `node --import` of a preload does.
 *
 * Off (a no-op handle, and no SDK module loaded) when `telemetry.tracing.enabled` is false, or when
 * OTEL_SDK_DISABLED is `true` (the spec's switch, which wins over the file). Throws TG_TELEMETRY_SETUP when the
 * file's exporter settings cannot be used (node-sdk.ts).
 */
export async function startAppTelemetry(settings: TelemetrySettings, options: StartAppTelemetryOptions): Promise<TelemetryHandle> {
  // The spec: only a case-insensitive `true` disables; any other value is ignored.
  if (!settings.tracing.enabled || process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return NOOP;
  try {
    // A dynamic import, so that an app with tracing off never loads the SDK.
    const { startNodeSdk } = await import('./node-sdk.ts');
    return await startNodeSdk(settings, options);
  } catch (err) {
    if (isTgError(err)) throw err;
    throw new TgError('TG_TELEMETRY_SETUP', `starting the OpenTelemetry Node SDK failed: ${(err as Error).message}`, { cause: err });
  }
}

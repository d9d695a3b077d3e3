import { isTgError, TgError } from '@tiergate/errors';
import type { StartTelemetryOptions, TelemetryHandle, TelemetrySettings } from './options.ts';

const NOOP: TelemetryHandle = {
  enabled: false,
  shutdown: async () => {},
  [Symbol.asyncDispose]: async () => {},
};

let running: TelemetryHandle | undefined;

/**
 * Starts OpenTelemetry tracing for this process as `telemetry.tracing` says, and returns the
 * handle whose shutdown() flushes what is still queued. Call it once, first thing, and call
 * shutdown() before exit. For the tiergate processes (proxy, director), which make their spans
 * through the API and need no instrumentation; app servers use startAppTelemetry (the standard
 * Node SDK with the HTTP and ioredis instrumentations).
 *
 * With tracing disabled it returns a no-op handle and loads no SDK module: libraries' calls to
 * `@opentelemetry/api` then stay no-ops that cost a function call. With tracing enabled the SDK
 * (tracer provider, parent-based ratio sampler, batch processor, OTLP exporter, W3C trace-context
 * and baggage propagators, AsyncLocalStorage context) is registered globally. Throws TgError TG_TELEMETRY_SETUP when the SDK cannot
 * start (unsupported protocol, already started) and nothing stays registered then.
 */
export async function startTelemetry(settings: TelemetrySettings, options: StartTelemetryOptions): Promise<TelemetryHandle> {
  if (!settings.tracing.enabled) return NOOP;
  if (running) throw new TgError('TG_TELEMETRY_SETUP', 'telemetry is already started in this process; shut it down first');
  try {
    // A dynamic import, so that a process with tracing off never loads the SDK.
    const { startTracingSdk } = await import('./tracing-sdk.ts');
    const handle = await startTracingSdk(settings, options);
    running = handle;
    const shutdown = async (): Promise<void> => {
      await handle.shutdown();
      if (running === handle) running = undefined;
    };
    return { enabled: true, shutdown, [Symbol.asyncDispose]: shutdown };
  } catch (err) {
    if (isTgError(err)) throw err;
    throw new TgError('TG_TELEMETRY_SETUP', `starting the OpenTelemetry SDK failed: ${(err as Error).message}`, { cause: err });
  }
}

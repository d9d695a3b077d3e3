// Records every module this process resolves (ESM and require alike, via an in-thread resolve
// hook installed before anything else loads), then starts telemetry as TG_TELEMETRY says, makes a
// span and shuts down. Prints the resolved @opentelemetry modules and whether the span recorded.
import { registerHooks } from 'node:module';

const resolved = new Set<string>();
registerHooks({
  resolve(specifier, ctx, nextResolve) {
    const result = nextResolve(specifier, ctx);
    resolved.add(result.url);
    return result;
  },
});

const { trace } = await import('@opentelemetry/api');
const { startTelemetry } = await import('../../src/index.ts');
const { optionsFromEnv, settingsFromEnv } = await import('./settings.ts');
const telemetry = await startTelemetry(settingsFromEnv(), optionsFromEnv());
const span = trace.getTracer('probe').startSpan('probe');
const recording = span.isRecording();
span.end();
await telemetry.shutdown();
const otel = [...resolved].map((url) => /node_modules\/(@opentelemetry\/[^/]+|import-in-the-middle)\//.exec(url)?.[1]).filter(Boolean);
process.stdout.write(`${JSON.stringify({ enabled: telemetry.enabled, recording, modules: [...new Set(otel)].sort() })}\n`);

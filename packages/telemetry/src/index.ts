// Public surface of @tiergate/telemetry: the one place an OpenTelemetry SDK is started.
// Libraries (proxy, session, demo-app) depend on @opentelemetry/api only (the demo app also on @opentelemetry/core's
// RPC metadata, the hook through which web frameworks give the HTTP instrumentation their route); see docs/telemetry.md.
export { type StartAppTelemetryOptions, startAppTelemetry } from './app-sdk/start-app-telemetry.ts';
export { type LogTraceContext, logContext } from './log-context.ts';
export type { StartTelemetryOptions, TelemetryHandle, TelemetrySettings, Tier } from './options.ts';
export { otlpTracesEndpoint, otlpTracesUrl, type ProcessFacts, resourceAttributes } from './resource-attributes.ts';
export { startTelemetry } from './start-telemetry.ts';

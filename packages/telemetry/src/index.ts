// Public surface of @tiergate/telemetry: the one place an OpenTelemetry SDK is started.
// Libraries (proxy, session, demo-app) depend on @opentelemetry/api only; see docs/telemetry.md.
export { type LogTraceContext, logContext } from './log-context.ts';
export type { StartTelemetryOptions, TelemetryHandle, TelemetrySettings, Tier } from './options.ts';
export { otlpTracesEndpoint, otlpTracesUrl, type ProcessFacts, resourceAttributes } from './resource-attributes.ts';
export { startTelemetry } from './start-telemetry.ts';

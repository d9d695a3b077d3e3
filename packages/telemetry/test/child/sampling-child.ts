// Starts TG_ROOTS root spans plus one under a remote sampled parent and one under a remote
// unsampled parent; prints which spans the SDK recorded (sampled), then shuts down.
import { context, type SpanContext, TraceFlags, trace } from '@opentelemetry/api';
import { startTelemetry } from '../../src/index.ts';
import { optionsFromEnv, settingsFromEnv } from './settings.ts';

const telemetry = await startTelemetry(settingsFromEnv(), optionsFromEnv());
const tracer = trace.getTracer('tiergate-test-sampling');
const recorded: string[] = [];
for (let i = 0; i < Number(process.env.TG_ROOTS ?? 0); i += 1) {
  const span = tracer.startSpan(`root-${i}`);
  if (span.isRecording()) recorded.push(span.spanContext().traceId);
  span.end();
}
const remote = (flags: TraceFlags): SpanContext => ({
  traceId: 'ab'.repeat(16),
  spanId: 'cd'.repeat(8),
  traceFlags: flags,
  isRemote: true,
});
for (const [name, flags] of [
  ['remote-sampled', TraceFlags.SAMPLED],
  ['remote-unsampled', TraceFlags.NONE],
] as const) {
  tracer.startSpan(name, {}, trace.setSpanContext(context.active(), remote(flags))).end();
}
await telemetry.shutdown();
process.stdout.write(`${JSON.stringify({ recorded })}\n`);

// Plays the proxy: a SERVER span, a CLIENT span per upstream attempt, traceparent + baggage sent
// over a real HTTP request to TG_TARGET (when set), then shutdown. Prints the ids it saw as JSON.
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { logContext, startTelemetry } from '../../src/index.ts';
import { optionsFromEnv, settingsFromEnv } from './settings.ts';

const telemetry = await startTelemetry(settingsFromEnv(), optionsFromEnv());
const tracer = trace.getTracer('tiergate-test-proxy');
const outside = logContext();
const report = await tracer.startActiveSpan(
  'HTTP GET',
  { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET' } },
  async (server) => {
    const inServer = logContext();
    const client = tracer.startSpan('upstream GET', { kind: SpanKind.CLIENT, attributes: { 'tiergate.attempt': 1 } });
    const headers: Record<string, string> = {};
    const baggage = propagation.createBaggage({ 'tiergate.test': { value: 'carried' } });
    propagation.inject(propagation.setBaggage(trace.setSpan(context.active(), client), baggage), headers);
    let upstream: unknown;
    if (process.env.TG_TARGET) upstream = await (await fetch(process.env.TG_TARGET, { headers })).json();
    client.end();
    server.end();
    return {
      traceId: server.spanContext().traceId,
      serverSpanId: server.spanContext().spanId,
      clientSpanId: client.spanContext().spanId,
      headers,
      upstream,
      inServer,
    };
  },
);
await telemetry.shutdown();
process.stdout.write(`${JSON.stringify({ ...report, outside })}\n`);

// Plays the app: continues the trace from the incoming traceparent, answers one request with what
// it received, then flushes its spans, closes and exits. Prints "listening <url>" when ready.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { startTelemetry } from '../../src/index.ts';
import { optionsFromEnv, settingsFromEnv } from './settings.ts';

const telemetry = await startTelemetry(settingsFromEnv(), optionsFromEnv());
const tracer = trace.getTracer('tiergate-test-app');
const server = createServer((req, res) => {
  const parent = propagation.extract(context.active(), req.headers);
  const span = tracer.startSpan('GET /hello', { kind: SpanKind.SERVER }, parent);
  const baggage = propagation.getBaggage(parent)?.getEntry('tiergate.test')?.value;
  span.setAttribute('test.baggage', baggage ?? 'none');
  span.end();
  res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ traceparent: req.headers.traceparent, baggage, spanId: span.spanContext().spanId }), async () => {
    await telemetry.shutdown();
    server.close();
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}/hello\n`);
});

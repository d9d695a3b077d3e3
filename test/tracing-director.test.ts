import { once } from 'node:events';
import { createServer } from 'node:net';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { validateConfig } from '@tiergate/config';
import { Director, MemoryStateStore } from '@tiergate/director';
import { logContext } from '@tiergate/telemetry';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeIpvs } from '../packages/director/test/fake-ipvs.ts';

// The director's spans, in process: the real Director with real TCP health checks against loopback,
// an in-memory IPVS table (the kernel side is tested in the QEMU guest), and the OpenTelemetry SDK
// with an in-memory exporter standing in for the one @tiergate/telemetry registers.

// One provider for the file: a tracer obtained at module load (as the director's is) keeps the
// provider it first delegated to, as in a process, which registers its SDK once.
const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });

beforeAll(() => {
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});

afterEach(() => exporter.reset());

afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
});

/** A service whose two real servers are checked on `port`: 127.0.0.1 answers, 127.0.0.2 refuses. */
function services(port: number) {
  return validateConfig({
    version: 1,
    virtual_services: [
      {
        address: '10.0.0.100',
        port: 80,
        scheduler: 'rr',
        real_servers: [{ address: '127.0.0.1' }, { address: '127.0.0.2' }],
        health_check: { type: 'tcp', port, interval: 50, timeout: 500, rise: 1, fall: 1, jitter: 0 },
      },
    ],
  }).virtual_services;
}

const attrs = (s: ReadableSpan) => s.attributes;

describe('tracing: the director', () => {
  it('makes one root span per reconcile cycle and one per health transition, linked from the cycle it caused', async () => {
    const server = createServer((socket) => socket.end()).listen(0, '127.0.0.1');
    await once(server, 'listening');
    await using _server = { [Symbol.asyncDispose]: () => new Promise<void>((r) => server.close(() => r())) };
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info', mixin: logContext }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const port = (server.address() as { port: number }).port;
    await using director = new Director({
      name: 'd1',
      services: services(port),
      driver: new FakeIpvs(),
      state: new MemoryStateStore(),
      intervalMs: 60_000,
      logger,
    });

    await director.start(); // the first cycle creates the service and both destinations
    const deadline = Date.now() + 10_000;
    while (director.status().lastCycle?.ops !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await director.reconcileNow(); // nothing left to do
    await director.stop();

    const spans = exporter.getFinishedSpans();
    const cycles = spans.filter((s) => s.name === 'director reconcile');
    const transitions = spans.filter((s) => s.name === 'director health transition');
    expect(cycles.length).toBeGreaterThanOrEqual(2);
    for (const s of [...cycles, ...transitions]) {
      expect(s.parentSpanContext).toBeUndefined();
      expect(s.instrumentationScope.name).toBe('@tiergate/director');
    }
    expect(attrs(cycles[0]!)).toEqual({
      'tiergate.director.name': 'd1',
      'tiergate.reconcile.ops_planned': 3,
      'tiergate.reconcile.ops_applied': 3,
      'tiergate.reconcile.ops_tolerated': 0,
      'tiergate.reconcile.result': 'applied',
    });
    expect(transitions).toHaveLength(1);
    expect(attrs(transitions[0]!)).toMatchObject({
      'tiergate.director.name': 'd1',
      'tiergate.virtual_service': 'tcp/10.0.0.100:80',
      'tiergate.real_server': '127.0.0.2:80',
      'tiergate.health.state': 'down',
    });
    // The cycle the transition triggered (weight 0 for the failed server) links to it.
    const caused = cycles.find((s) => s.links.some((l) => l.context.spanId === transitions[0]!.spanContext().spanId));
    expect(caused && attrs(caused)).toMatchObject({ 'tiergate.reconcile.ops_planned': 1, 'tiergate.reconcile.result': 'applied' });
    // A cycle with nothing to do still reports itself.
    expect(attrs(cycles.at(-1)!)).toMatchObject({ 'tiergate.reconcile.ops_planned': 0, 'tiergate.reconcile.result': 'unchanged' });

    // Log lines written during a cycle or a transition carry that span's ids.
    const reconciled = lines.find((l) => l.msg === 'reconciled');
    expect(reconciled).toMatchObject({ trace_id: cycles[0]!.spanContext().traceId, span_id: cycles[0]!.spanContext().spanId });
    const down = lines.find((l) => l.msg === 'real server down');
    expect(down).toMatchObject({ trace_id: transitions[0]!.spanContext().traceId });
  });

  it('marks a failed cycle ERROR with the error code and the ops done before the failure', async () => {
    const driver = new FakeIpvs();
    driver.failOn = { match: /addDestination .*127\.0\.0\.2/, error: new Error('EPERM') };
    const [vs] = services(9);
    const withoutCheck = [{ ...vs!, health_check: undefined }];
    await using director = new Director({ name: 'd1', services: withoutCheck, driver, state: new MemoryStateStore(), intervalMs: 60_000 });
    await director.start();
    await director.stop();

    const [cycle] = exporter.getFinishedSpans();
    expect(cycle?.status).toMatchObject({ code: 2 }); // SpanStatusCode.ERROR
    expect(attrs(cycle!)).toMatchObject({
      'tiergate.reconcile.ops_planned': 3,
      'tiergate.reconcile.ops_applied': 2,
      'tiergate.reconcile.result': 'failed',
      'error.type': 'TG_DIRECTOR_APPLY_PARTIAL',
    });
  });
});

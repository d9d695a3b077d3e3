import { isSpanContextValid, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, TraceFlags, type Tracer, trace } from '@opentelemetry/api';
import { suppressTracing, TraceState } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ParentBasedSampler, type ReadableSpan, TracerProvider } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { appendSpanField, encodeRequest } from '../src/exporters/otlp-span-encoder.ts';
import { ProtoWriter } from '../src/exporters/proto-writer.ts';
import { LightTracerProvider } from '../src/sdk/light-tracer.ts';
import { PooledRandomIdGenerator } from '../src/sdk/random-ids.ts';
import { TraceIdThresholdSampler } from '../src/sdk/ratio-sampler.ts';

const resource = resourceFromAttributes({ 'service.name': 'light' });

/** The light tracer and the SDK's, configured alike (tracing-sdk.ts), each collecting the spans that end. */
function tracers(ratio = 1) {
  const ended = { light: [] as ReadableSpan[], sdk: [] as ReadableSpan[] };
  const root = new TraceIdThresholdSampler(ratio);
  const light = new LightTracerProvider(resource, new PooledRandomIdGenerator(), root, { onEnd: (s) => ended.light.push(s) });
  const sdk = new TracerProvider({
    resource,
    sampler: new ParentBasedSampler({ root }),
    spanProcessors: [{ onStart: () => {}, onEnd: (s) => ended.sdk.push(s), forceFlush: async () => {}, shutdown: async () => {} }],
  });
  return { light: light.getTracer('@tiergate/test', '1.0.0'), sdk: sdk.getTracer('@tiergate/test', '1.0.0'), ended };
}

const BOOM = Object.assign(new Error('boom'), { code: 'ECONNRESET' });

/** Every API call a library may make, on one tracer; the same script runs against both. */
function script(tracer: Tracer): void {
  const server = tracer.startSpan(
    'HTTP GET',
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', nothing: undefined } },
    ROOT_CONTEXT,
  );
  server.setAttribute('server.port', 8080);
  server.setAttributes({ 'url.path': '/é', 'tiergate.flag': true, 'tiergate.list': ['a', 'b'], 'tiergate.mixed': ['a', 1] as never });
  server.setAttribute('', 'empty key');
  server.setAttribute('tiergate.object', { not: 'valid' } as never);
  for (let i = 0; i < 130; i++) server.setAttribute(`many.${i}`, i); // past the limit of 128: dropped and counted
  server.setAttribute('server.port', 8081); // an existing key is replaced, even at the limit
  for (let i = 0; i < 130; i++) server.addEvent(`event ${i}`, { i });
  server.addEvent('timed', 1_700_000_000_123);
  server.recordException(BOOM);
  server.updateName('HTTP GET /');
  server.setStatus({ code: SpanStatusCode.UNSET });
  server.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream failed' });
  const client = tracer.startSpan(
    'upstream GET',
    { kind: SpanKind.CLIENT, links: [{ context: server.spanContext(), attributes: { why: 'retry', bad: { x: 1 } as never } }] },
    trace.setSpan(ROOT_CONTEXT, server),
  );
  client.setStatus({ code: SpanStatusCode.OK });
  client.setStatus({ code: SpanStatusCode.ERROR, message: 'ignored: OK is final' });
  client.end();
  client.setAttribute('after.end', 1); // ignored (warned)
  client.end(); // ignored (logged)
  const timed = tracer.startSpan('timed', { startTime: [1_700_000_000, 5] }, trace.setSpan(ROOT_CONTEXT, server));
  timed.end([1_700_000_001, 7]);
  server.end();
}

/** What an exporter sees of a span, without what differs by construction (ids, clock readings). */
function observable(span: ReadableSpan) {
  return {
    name: span.name,
    kind: span.kind,
    scope: span.instrumentationScope.name,
    hasParent: span.parentSpanContext !== undefined,
    attributes: span.attributes,
    droppedAttributes: span.droppedAttributesCount,
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes, dropped: e.droppedAttributesCount ?? 0 })),
    droppedEvents: span.droppedEventsCount,
    links: span.links.map((l) => ({ attributes: l.attributes, dropped: l.droppedAttributesCount })),
    droppedLinks: span.droppedLinksCount,
    status: span.status,
    ended: span.ended,
    flags: span.spanContext().traceFlags,
  };
}

describe('LightTracerProvider (spans recorded straight into the encoder)', () => {
  it('records what the SDK records for the same calls: attributes and limits, events, links, status, names', () => {
    const { light, sdk, ended } = tracers();
    script(light);
    script(sdk);
    expect(ended.light).toHaveLength(3);
    expect(ended.light.map(observable)).toEqual(ended.sdk.map(observable));
    const server = ended.light.find((s) => s.name === 'HTTP GET /')!;
    // 137 distinct keys with a value the SDK accepts (maps and mixed arrays are AnyValue): 128 kept, 9 dropped;
    // the empty key and the undefined value are refused without being counted.
    expect(Object.keys(server.attributes)).toHaveLength(128);
    expect(server.droppedAttributesCount).toBe(9);
    expect(server.attributes['server.port']).toBe(8081);
    expect(server.droppedEventsCount).toBe(4); // 132 events, limit 128: the oldest went
    expect(server.events.at(-1)!.attributes!['exception.type']).toBe('ECONNRESET');
  });

  it('times: the start from the wall clock, the end from the monotonic duration; explicit times as given', () => {
    const { light, ended } = tracers();
    const before = Date.now();
    const span = light.startSpan('clocked', {}, ROOT_CONTEXT);
    span.end();
    const [s] = ended.light;
    const startMs = s!.startTime[0] * 1000 + s!.startTime[1] / 1e6;
    expect(startMs).toBeGreaterThanOrEqual(before);
    const endNs = s!.endTime[0] * 1e9 + s!.endTime[1];
    const startNs = s!.startTime[0] * 1e9 + s!.startTime[1];
    expect(endNs).toBeGreaterThanOrEqual(startNs);
    expect(s!.duration[0] * 1e9 + s!.duration[1]).toBeCloseTo(endNs - startNs, -3);

    const { light: l2, sdk, ended: e2 } = tracers();
    for (const t of [l2, sdk]) {
      const x = t.startSpan('explicit', { startTime: [1_700_000_000, 5] }, ROOT_CONTEXT);
      x.end([1_699_999_999, 0]); // before the start: clamped to the start, as the SDK does
    }
    expect(e2.light.map((x) => [x.startTime, x.endTime, x.duration])).toEqual(e2.sdk.map((x) => [x.startTime, x.endTime, x.duration]));
  });

  it('samples like ParentBased(trace-id ratio): roots by the ratio, children by the parent flag, suppressed → invalid', () => {
    const none = tracers(0).light;
    const dropped = none.startSpan('root', {}, ROOT_CONTEXT);
    expect(dropped.isRecording()).toBe(false);
    expect(isSpanContextValid(dropped.spanContext())).toBe(true); // still propagates, as unsampled
    expect(dropped.spanContext().traceFlags).toBe(TraceFlags.NONE);

    const sampledParent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
      traceState: new TraceState('rojo=00f067aa0ba902b7'),
    });
    const child = none.startSpan('child', {}, sampledParent) as Span & ReadableSpan;
    expect(child.isRecording()).toBe(true); // ratio 0, yet the sampled remote parent decides
    expect(child.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(child.spanContext().traceState?.serialize()).toBe('rojo=00f067aa0ba902b7');
    expect(child.parentSpanContext?.spanId).toBe('b7ad6b7169203331');

    const all = tracers(1).light;
    const unsampledParent = trace.setSpanContext(ROOT_CONTEXT, { ...trace.getSpanContext(sampledParent)!, traceFlags: TraceFlags.NONE });
    const notKept = all.startSpan('child', {}, unsampledParent);
    expect(notKept.isRecording()).toBe(false);
    expect(notKept.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(notKept.spanContext().spanId).not.toBe('b7ad6b7169203331');
    expect(all.startSpan('root', { root: true }, sampledParent).spanContext().traceId).not.toBe('0af7651916cd43dd8448eb211c80319c');

    const suppressed = all.startSpan('x', {}, suppressTracing(ROOT_CONTEXT));
    expect(isSpanContextValid(suppressed.spanContext())).toBe(false);
  });

  it('ratio 0.5 keeps exactly the roots whose trace id the sampler keeps', () => {
    const root = new TraceIdThresholdSampler(0.5);
    const tracer = new LightTracerProvider(resource, new PooledRandomIdGenerator(), root, { onEnd: () => {} }).getTracer('t');
    const spans = Array.from({ length: 400 }, () => tracer.startSpan('r', {}, ROOT_CONTEXT));
    const kept = spans.filter((s) => s.isRecording());
    expect(spans.every((s) => s.isRecording() === root.keeps(s.spanContext().traceId))).toBe(true);
    expect(kept.length).toBeGreaterThan(120);
    expect(kept.length).toBeLessThan(280);
  });

  it("encodes to the SDK serializer's bytes (the ReadableSpan shape the encoder and exporters read is complete)", () => {
    const { light, ended } = tracers();
    script(light);
    const scope = new ProtoWriter(16);
    for (const span of ended.light) appendSpanField(scope, span);
    const ours = new ProtoWriter(16);
    encodeRequest(ours, resource, [{ scope: ended.light[0]!.instrumentationScope, spans: scope.buf.subarray(0, scope.pos) }]);
    expect(Buffer.from(ours.copy())).toEqual(Buffer.from(ProtobufTraceSerializer.serializeRequest(ended.light)!));
  });
});

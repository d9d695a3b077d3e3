import { context, type Span, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { collectSpans, decodeTraceRequestProtobuf } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { appendSpanField, encodeRequest, type ScopeBatch } from '../src/exporters/otlp-span-encoder.ts';
import { ProtoWriter } from '../src/exporters/proto-writer.ts';

/** Real SDK spans (what the processor receives), covering every field the encoder writes. */
async function makeSpans(): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'enc', 'host.name': 'h'.repeat(200), 'process.pid': 4242 }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  const proxy = provider.getTracer('@tiergate/proxy', '1.2.3');
  const app = provider.getTracer('@tiergate/demo-app');
  const remoteParent = trace.setSpanContext(context.active(), {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
  });
  const server = proxy.startSpan('HTTP GET', { kind: SpanKind.SERVER }, remoteParent);
  server.setAttributes({
    'http.request.method': 'GET',
    'url.path': `/${'é'.repeat(100)}/日本`, // multi-byte UTF-8, > 127 bytes: a widened length prefix
    'server.port': 8080,
    'tiergate.short': 'abc→d', // short, ASCII first then not: the writer's ASCII loop gives up mid-way
    'tiergate.negative': -42,
    'tiergate.big': 2 ** 40,
    'tiergate.ratio': 0.25,
    'tiergate.flag': true,
    'tiergate.list': ['a', 'b'],
    'tiergate.numbers': [1, 2.5],
    'tiergate.long': 'x'.repeat(20_000), // a 3-byte length prefix, shifting what follows
  });
  server.addEvent('retry', { 'tiergate.attempt': 2 });
  server.addEvent('bare');
  const client = proxy.startSpan(
    'upstream GET',
    { kind: SpanKind.CLIENT, links: [{ context: server.spanContext(), attributes: { why: 'follows' } }] },
    trace.setSpan(context.active(), server),
  );
  client.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream reset' });
  client.end();
  server.setStatus({ code: SpanStatusCode.OK });
  server.end();
  const internal: Span = app.startSpan('session load');
  internal.end();
  await provider.forceFlush(); // SimpleSpanProcessor exports asynchronously
  return memory.getFinishedSpans();
}

/** What EncodingSpanProcessor does with the same spans: encode each at its end, frame per resource and scope. */
function encodeLikeTheProcessor(spans: readonly ReadableSpan[]): Uint8Array {
  const byScope = new Map<ReadableSpan['instrumentationScope'], ProtoWriter>();
  for (const span of spans) {
    const w = byScope.get(span.instrumentationScope) ?? new ProtoWriter(16);
    byScope.set(span.instrumentationScope, w);
    appendSpanField(w, span);
  }
  const scopes: ScopeBatch[] = [...byScope].map(([scope, w]) => ({ scope, spans: w.buf.subarray(0, w.pos) }));
  const request = new ProtoWriter(16); // tiny on purpose: every write path grows the buffer
  encodeRequest(request, spans[0]!.resource, scopes);
  return request.copy();
}

describe('OTLP span encoder', () => {
  it('gives the same bytes as the SDK serializer (ProtobufTraceSerializer) for the same spans', async () => {
    const spans = await makeSpans();
    expect(spans).toHaveLength(3);
    const ours = encodeLikeTheProcessor(spans);
    const sdk = ProtobufTraceSerializer.serializeRequest(spans)!;
    expect(Buffer.from(ours).toString('hex')).toBe(Buffer.from(sdk).toString('hex'));
  });

  it('decodes (protobufjs, the OTLP schema) to the spans, ids, parents, kinds, status and attributes made', async () => {
    const spans = await makeSpans();
    const decoded = collectSpans(decodeTraceRequestProtobuf(encodeLikeTheProcessor(spans)), 'protobuf');
    const byName = new Map(decoded.map((s) => [s.name, s]));
    const server = byName.get('HTTP GET')!;
    const client = byName.get('upstream GET')!;
    expect(server.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(server.parentSpanId).toBe('b7ad6b7169203331');
    expect(server.kind).toBe('SERVER');
    expect(server.scope).toBe('@tiergate/proxy');
    expect(server.resource['host.name']).toBe('h'.repeat(200));
    expect(server.attributes['url.path']).toBe(`/${'é'.repeat(100)}/日本`);
    expect(server.attributes['tiergate.negative']).toBe(-42);
    expect(server.attributes['tiergate.big']).toBe(2 ** 40);
    expect(server.attributes['tiergate.ratio']).toBe(0.25);
    expect(server.attributes['tiergate.list']).toEqual(['a', 'b']);
    expect((server.attributes['tiergate.long'] as string).length).toBe(20_000);
    expect(client.parentSpanId).toBe(server.spanId);
    expect(client.status).toEqual({ code: 'ERROR', message: 'upstream reset' });
    expect(byName.get('session load')!.scope).toBe('@tiergate/demo-app');
    // The start time survives the 64-bit split exactly (a clock in 2026 needs more than 53 bits of ns).
    const [sec, ns] = spans.find((s) => s.name === 'HTTP GET')!.startTime;
    expect(BigInt(server.startTimeUnixNano) / 1_000_000_000n).toBeGreaterThanOrEqual(BigInt(sec) - 1n);
    expect(ns).toBeLessThan(1e9);
  });
});

describe('OTLP span encoder: attribute keys', () => {
  it('matches the SDK bytes with keys seen before (cached), past the cache bound, and over 128 characters', async () => {
    const memory = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
    const tracer = provider.getTracer('keys');
    // 10 spans × 120 keys of their own (1,200 distinct: over the bound of 1,024), each also setting keys of the first
    // span (cached by then), and a 203-character key with multi-byte characters (never cached).
    for (let n = 0; n < 10; n++) {
      const span = tracer.startSpan(`s${n}`);
      for (let i = 0; i < 120; i++) span.setAttribute(`k.${n}.${i}`, i);
      for (let i = 0; i < 3; i++) span.setAttribute(`k.0.${i}`, `again ${n}`);
      span.setAttribute('é'.repeat(3) + 'l'.repeat(200), n);
      span.end();
    }
    await provider.forceFlush();
    const spans = memory.getFinishedSpans();
    expect(spans).toHaveLength(10);
    const sdk = ProtobufTraceSerializer.serializeRequest(spans)!;
    // Twice: the second pass finds every key of the first that fit in the cache.
    for (let pass = 0; pass < 2; pass++) {
      expect(Buffer.from(encodeLikeTheProcessor(spans)).toString('hex')).toBe(Buffer.from(sdk).toString('hex'));
    }
  });
});

describe('ProtoWriter', () => {
  it('writes varints like protobuf: small, 32-bit, 64-bit and negative (ten bytes, two’s complement)', () => {
    const hex = (f: (w: ProtoWriter) => void) => {
      const w = new ProtoWriter(1);
      f(w);
      return Buffer.from(w.copy()).toString('hex');
    };
    expect(hex((w) => w.varint(1))).toBe('01');
    expect(hex((w) => w.varint(300))).toBe('ac02');
    expect(hex((w) => w.varint(2 ** 32))).toBe('8080808010');
    expect(hex((w) => w.varint(-1))).toBe('ffffffffffffffffff01');
    expect(hex((w) => w.fixed64(1, 2))).toBe('0100000002000000');
    expect(hex((w) => w.string('é'))).toBe('02c3a9');
    expect(hex((w) => w.hexBytes('0aff'))).toBe('020aff');
  });

  it('widens a reserved length byte to 2 and 3 bytes and keeps the payload intact', () => {
    for (const n of [127, 128, 16383, 16384, 70_000]) {
      const w = new ProtoWriter(8);
      w.raw(Uint8Array.of(0xaa));
      const start = w.begin();
      w.raw(new Uint8Array(n).fill(7));
      w.end(start);
      w.raw(Uint8Array.of(0xbb));
      const out = Buffer.from(w.copy());
      const prefix = n < 128 ? 1 : n < 16384 ? 2 : 3;
      expect(out.length).toBe(1 + prefix + n + 1);
      expect(out[0]).toBe(0xaa);
      expect(out.at(-1)).toBe(0xbb);
      // Decode the varint back.
      let len = 0;
      for (let i = 0; i < prefix; i++) len |= (out[1 + i]! & 127) << (7 * i);
      expect(len).toBe(n);
      expect(out.subarray(1 + prefix, 1 + prefix + n).every((b) => b === 7)).toBe(true);
    }
  });
});

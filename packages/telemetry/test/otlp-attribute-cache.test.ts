/**
 * The encoder's attribute cache (otlp-span-encoder.ts, KeyCache) against the SDK serializer, byte for byte. In a file
 * of its own: the cache is per module, and otlp-span-encoder.test.ts fills its key bound on purpose.
 */
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { appendSpanField, encodeRequest } from '../src/exporters/otlp-span-encoder.ts';
import { ProtoWriter } from '../src/exporters/proto-writer.ts';

describe('OTLP span encoder: attribute values', () => {
  it('matches the SDK bytes for repeated values of every type, values alike as text, and past every bound', async () => {
    const memory = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
    const tracer = provider.getTracer('values');
    for (let n = 0; n < 90; n++) {
      const span = tracer.startSpan(`s${n}`);
      span.setAttribute('http.request.method', n % 2 ? 'GET' : 'POST');
      span.setAttribute('http.response.status_code', 200);
      span.setAttribute('as.text', n % 2 ? '200' : 200); // the same text as a string and as a number
      span.setAttribute('one.or.true', n % 3 === 0 ? true : 1);
      span.setAttribute('ratio', n % 2 ? 0.25 : -0.25);
      span.setAttribute('negative', -1);
      span.setAttribute('edge.64', 'a'.repeat(63) + (n % 2)); // cached: 64 characters
      span.setAttribute('edge.65', 'b'.repeat(64) + (n % 2)); // never cached: 65
      span.setAttribute('multi.byte', n % 2 ? 'é→日本' : 'ü');
      span.setAttribute('url.path', `/p/${n}`); // 90 values: past the 64 kept for one key
      span.setAttribute('url.path.again', `/p/${n % 70}`); // values 64–69 after the key stopped caching
      span.setAttribute('list', ['a', 'b']); // arrays are encoded every time
      span.end();
    }
    await provider.forceFlush();
    const spans = memory.getFinishedSpans();
    const sdk = Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!).toString('hex');
    // Three passes: the first fills the cache, the next two are served from it wherever it has the value.
    for (let pass = 0; pass < 3; pass++) {
      const w = new ProtoWriter(16);
      for (const span of spans) appendSpanField(w, span);
      const request = new ProtoWriter(16);
      encodeRequest(request, spans[0]!.resource, [{ scope: spans[0]!.instrumentationScope, spans: w.buf.subarray(0, w.pos) }]);
      expect(Buffer.from(request.copy()).toString('hex')).toBe(sdk);
    }
  });
});

import { context, DiagLogLevel, diag, TraceFlags, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import { collectSpans, decodeTraceRequestProtobuf } from '@tiergate/testkit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type EncodedBatch, EncodingSpanProcessor } from '../src/exporters/encoding-span-processor.ts';

/**
 * An exporter that keeps what it is given; `hold` keeps exports pending until released. `handBack`: each body is
 * copied as it is exported and its buffer handed back, as the OTLP exporters do once a request was answered.
 */
function recordingExporter(hold = false, handBack = false) {
  const batches: EncodedBatch[] = [];
  const pending: (() => void)[] = [];
  let shutdowns = 0;
  return {
    batches,
    release: () => {
      for (const r of pending.splice(0)) r();
    },
    shutdowns: () => shutdowns,
    names: () => batches.map((b) => collectSpans(decodeTraceRequestProtobuf(b.body), 'protobuf').map((s) => s.name)),
    exporter: {
      export: (batch: EncodedBatch): Promise<ArrayBuffer | undefined> => {
        // Without handBack the body must stay valid after the processor goes on encoding: copy nothing, check later.
        batches.push(handBack ? { ...batch, body: new Uint8Array(batch.body) } : batch); // a copy (Buffer#slice is not)
        const back = handBack ? (batch.body.buffer as ArrayBuffer) : undefined;
        return hold ? new Promise((r) => pending.push(() => r(back))) : Promise.resolve(back);
      },
      shutdown: async () => {
        shutdowns++;
      },
    },
  };
}

function setup(exporter: ReturnType<typeof recordingExporter>['exporter'], o: { batch?: number; queue?: number; delay?: number } = {}) {
  const processor = new EncodingSpanProcessor({
    exporter,
    maxExportBatchSize: o.batch ?? 3,
    maxQueueSize: o.queue ?? 100,
    scheduledDelayMillis: o.delay ?? 1000,
  });
  const provider = new TracerProvider({ resource: resourceFromAttributes({ 'service.name': 'p' }), spanProcessors: [processor] });
  return { processor, provider, tracer: provider.getTracer('t'), other: provider.getTracer('other') };
}

afterEach(() => {
  vi.useRealTimers();
  diag.disable();
});

describe('EncodingSpanProcessor', () => {
  it('sends a request every maxExportBatchSize spans, each a valid OTLP request with those spans in order', async () => {
    const rec = recordingExporter();
    const { tracer, other } = setup(rec.exporter, { batch: 3 });
    for (let i = 0; i < 7; i++) (i === 4 ? other : tracer).startSpan(`s${i}`).end();
    expect(rec.batches.map((b) => b.spans)).toEqual([3, 3]);
    // Spans of two tracers in one batch: two ScopeSpans, grouped per scope.
    expect(rec.names()).toEqual([
      ['s0', 's1', 's2'],
      ['s3', 's5', 's4'],
    ]);
    const second = collectSpans(decodeTraceRequestProtobuf(rec.batches[1]!.body), 'protobuf');
    expect(second.map((s) => s.scope)).toEqual(['t', 't', 'other']);
    expect(second[0]!.serviceName).toBe('p');
  });

  it('sends a partial batch after scheduledDelayMillis, and what is left on forceFlush and shutdown', async () => {
    vi.useFakeTimers();
    const rec = recordingExporter();
    const { tracer, processor } = setup(rec.exporter, { batch: 10, delay: 1000 });
    tracer.startSpan('a').end();
    vi.advanceTimersByTime(999);
    expect(rec.batches).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(rec.names()).toEqual([['a']]);
    tracer.startSpan('b').end();
    await processor.forceFlush();
    expect(rec.names()).toEqual([['a'], ['b']]);
    tracer.startSpan('c').end();
    await processor.shutdown();
    expect(rec.names()).toEqual([['a'], ['b'], ['c']]);
    expect(rec.shutdowns()).toBe(1);
    tracer.startSpan('after shutdown').end();
    await processor.forceFlush();
    expect(rec.batches).toHaveLength(3);
  });

  it('encodes ended spans in chunks: every span is sent, in order per scope, whatever chunk boundary it fell on', async () => {
    vi.useFakeTimers();
    const rec = recordingExporter();
    // 300 spans per batch, the encoder's chunk is 64: the batches below end mid-chunk, and one after a whole chunk.
    const { tracer, other, processor } = setup(rec.exporter, { batch: 300, queue: 1000, delay: 1000 });
    const made: string[][] = [[], []];
    const end = (n: number) => {
      for (let i = 0; i < n; i++) {
        const name = `s${made[0]!.length + made[1]!.length}`;
        made[i % 5 === 4 ? 1 : 0]!.push(name);
        (i % 5 === 4 ? other : tracer).startSpan(name).end();
      }
    };
    end(130); // two chunks encoded, two spans waiting
    vi.advanceTimersByTime(1000); // the scheduled send takes the waiting ones too
    end(64); // exactly one chunk
    await processor.forceFlush();
    end(299);
    end(1); // the 300th: a full batch, sent at once, its last 44 (300 − 4 × 64) unencoded until then
    expect(rec.batches.map((b) => b.spans)).toEqual([130, 64, 300]);
    // Per batch: the first scope's spans, then the other's, each in the order they ended.
    const sent = rec.names().flat();
    expect(sent).toHaveLength(494);
    const expected = [
      [0, 130],
      [130, 194],
      [194, 494],
    ].flatMap(([from, to]) => {
      const inBatch = (name: string) => Number(name.slice(1)) >= from! && Number(name.slice(1)) < to!;
      return [...made[0]!.filter(inBatch), ...made[1]!.filter(inBatch)];
    });
    expect(sent).toEqual(expected);
    await processor.shutdown();
  });

  it('ignores spans that are not sampled', async () => {
    const rec = recordingExporter();
    const { tracer, processor } = setup(rec.exporter);
    const unsampled = trace.setSpanContext(context.active(), {
      traceId: '1'.repeat(32),
      spanId: '2'.repeat(16),
      traceFlags: TraceFlags.NONE,
      isRemote: true,
    });
    // The default sampler is parent-based: a child of an unsampled remote parent is not recorded, and a
    // recording-but-unsampled span cannot reach onEnd with the SAMPLED flag either.
    tracer.startSpan('child of unsampled', {}, unsampled).end();
    tracer.startSpan('kept').end();
    await processor.forceFlush();
    expect(rec.names()).toEqual([['kept']]);
  });

  it('drops spans beyond maxQueueSize while exports are pending, and says how many', async () => {
    const warnings: string[] = [];
    diag.setLogger(
      { error: () => {}, warn: (m) => warnings.push(m), info: () => {}, debug: () => {}, verbose: () => {} },
      DiagLogLevel.WARN,
    );
    const rec = recordingExporter(true);
    const { tracer, processor } = setup(rec.exporter, { batch: 2, queue: 4 });
    for (let i = 0; i < 10; i++) tracer.startSpan(`s${i}`).end();
    // Two batches in flight fill the queue of 4: the other 6 spans are dropped.
    expect(rec.batches.map((b) => b.spans)).toEqual([2, 2]);
    rec.release();
    await processor.forceFlush();
    tracer.startSpan('after').end();
    const flushed = processor.forceFlush();
    rec.release();
    await flushed;
    expect(rec.names()).toEqual([['s0', 's1'], ['s2', 's3'], ['after']]);
    expect(warnings).toEqual(['dropped 6 spans: the export queue (max_queue_size 4) was full']);
  });
  it('writes the next request over a buffer the exporter handed back, and never over one still being exported', async () => {
    const rec = recordingExporter(true, true);
    const { tracer, processor } = setup(rec.exporter, { batch: 2 });
    const seen: ArrayBuffer[] = [];
    const export_ = rec.exporter.export;
    rec.exporter.export = (batch) => {
      seen.push(batch.body.buffer as ArrayBuffer);
      return export_(batch);
    };
    for (let i = 0; i < 4; i++) tracer.startSpan(`s${i}`).end();
    // Two exports pending: two buffers of their own.
    expect(seen[1]).not.toBe(seen[0]);
    rec.release();
    await processor.forceFlush();
    for (let i = 4; i < 8; i++) tracer.startSpan(`s${i}`).end();
    // Both came back: the next two requests are written over them, not in new buffers.
    expect(new Set(seen.slice(2))).toEqual(new Set(seen.slice(0, 2)));
    rec.release();
    await processor.forceFlush();
    expect(rec.names()).toEqual([
      ['s0', 's1'],
      ['s2', 's3'],
      ['s4', 's5'],
      ['s6', 's7'],
    ]);
  });

  it('takes a new buffer when the one handed back is too small, or when the export failed', async () => {
    diag.setLogger({ error: () => {}, warn: () => {}, info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.ERROR);
    const seen: ArrayBuffer[] = [];
    let fail = true;
    const exporter = {
      export: async (batch: EncodedBatch) => {
        const buffer = batch.body.buffer as ArrayBuffer;
        seen.push(buffer);
        if (fail) throw new Error('collector down');
        return buffer;
      },
      shutdown: async () => {},
    };
    const { tracer, processor } = setup(exporter, { batch: 1 });
    tracer.startSpan('a').end();
    await processor.forceFlush();
    fail = false;
    tracer.startSpan('b').end();
    await processor.forceFlush();
    expect(seen[1]).not.toBe(seen[0]); // the failed export's buffer was not taken back
    tracer.startSpan('c').end();
    await processor.forceFlush();
    expect(seen[2]).toBe(seen[1]);
    // A span far larger than the buffer: the request is written in a new buffer, of the size it needs.
    tracer.startSpan('big', { attributes: { blob: 'x'.repeat(seen[2]!.byteLength) } }).end();
    await processor.forceFlush();
    expect(seen[3]).not.toBe(seen[2]);
    expect(seen[3]!.byteLength).toBeGreaterThan(seen[2]!.byteLength);
  });
});

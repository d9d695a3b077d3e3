/**
 * The span pipeline for `protocol: http/protobuf`: spans are encoded to OTLP protobuf soon after they end (64 at a
 * time, ENCODE_CHUNK), into a per-scope buffer, and the buffers are framed into one ExportTraceServiceRequest per
 * batch, then handed to an EncodedBatchExporter: otlp-proto-exporter.ts (the OTLP exporter's export delegate over an
 * undici transport with the exporter's retry policy; headers, gzip, timeout and TLS as otlp-export-settings.ts
 * resolves them from telemetry.tracing and OTEL_EXPORTER_OTLP_*), run on a thread of its own by default
 * (worker-exporter.ts).
 *
 * Why not the SDK's BatchSpanProcessor + OTLPTraceExporter: that pipeline keeps every ended span object alive until
 * its batch is exported. At 100 % sampling the proxy ends ~20k spans/s, so those objects outlive several young-
 * generation collections, get promoted, and the old generation's collections were most of what tracing cost
 * (loadtest/tracing-bench.ts). Encoded within a few ms, a span is a few hundred bytes in a Buffer and the span
 * object dies young. Batching, the scheduled delay, the bounded queue and flush-on-shutdown keep the
 * BatchSpanProcessor's semantics and defaults.
 */
import { diag, TraceFlags } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace';
import { appendSpanField, encodeRequest, type ScopeBatch } from './otlp-span-encoder.ts';
import { ProtoWriter } from './proto-writer.ts';

/** One framed ExportTraceServiceRequest and how many spans it carries. */
export interface EncodedBatch {
  readonly body: Uint8Array;
  readonly spans: number;
  /** The body's ArrayBuffer holds nothing else and nobody else uses it: an exporter may take (transfer) it. */
  readonly owned?: boolean;
}

/**
 * Sends one encoded request; rejects when the export failed (after the transport's own retries). An exporter may
 * resolve with an `owned` batch's buffer once it is done with it (the request was answered): the processor then
 * writes its next request there instead of in a new buffer. Anything else resolves with undefined.
 */
export interface EncodedBatchExporter {
  export(batch: EncodedBatch): Promise<ArrayBuffer | undefined>;
  shutdown(): Promise<void>;
}

/**
 * Request buffers handed back by the exporter and kept for the next batches. A fresh buffer of a batch's size
 * (~0.7 MB at 2048 spans) cost ~0.5 ms of page faults and zeroing per batch on these machines, ~0.75 % of a core at
 * 100 % sampling (~15 batches a second; docs/telemetry.md); a reused one only the copy. Two: one in flight, one filling.
 */
const SPARE_BUFFERS = 2;
/**
 * Ended spans are encoded this many at a time (and all of them before a send), not one by one as they end. The
 * encoder's code then runs in one stretch per chunk instead of between every two requests (likely why it is cheaper:
 * its code and data stay in the caches for the chunk; not verified, no PMU here): at 100 % sampling 16.1 ± 0.4 % of throughput lost one span at a
 * time, 13.4–14.6 % in chunks of 64 (16: 14.6 %, 32: 15.0 %, 256: 19.4 %: a chunk of 256 outlives a young-generation
 * cycle); at 1 %, 3.9 ± 0.3 % against 2.8 ± 0.4 % (loadtest/tracing-bench.ts, docs/telemetry.md). At 100 % a chunk
 * is ~2 ms of spans.
 */
const ENCODE_CHUNK = 64;
/** A new request buffer has this much room over what its batch needs, so the next batches fit it too. */
const REQUEST_HEADROOM = 1.25;

export interface EncodingSpanProcessorOptions {
  readonly exporter: EncodedBatchExporter;
  /** Spans per export request (the SDK's maxExportBatchSize). */
  readonly maxExportBatchSize: number;
  /** Spans held at most, encoded or in flight; beyond, new spans are dropped and counted (maxQueueSize). */
  readonly maxQueueSize: number;
  /** A partial batch is sent after this long (scheduledDelayMillis, SDK default 5 s). */
  readonly scheduledDelayMillis: number;
}

interface ResourceBatch {
  readonly resource: Resource;
  readonly scopes: Map<InstrumentationScope, ProtoWriter>;
}

export class EncodingSpanProcessor implements SpanProcessor {
  readonly #o: EncodingSpanProcessorOptions;
  /** Spans encoded and not yet handed to the exporter, per resource and scope (by identity: one per tracer). */
  readonly #batches = new Map<Resource, ResourceBatch>();
  #batched = 0;
  #inFlight = 0;
  readonly #exports = new Set<Promise<void>>();
  #dropped = 0;
  #timer: NodeJS.Timeout | undefined;
  #shutdown: Promise<void> | undefined;
  readonly #spare: ArrayBuffer[] = [];
  /** Ended spans not yet encoded (fewer than ENCODE_CHUNK), counted in #batched. */
  readonly #ended: ReadableSpan[] = [];

  constructor(options: EncodingSpanProcessorOptions) {
    this.#o = options;
  }

  onStart(_span: Span): void {}

  onEnd(span: ReadableSpan): void {
    if (this.#shutdown || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.#batched + this.#inFlight >= this.#o.maxQueueSize) {
      this.#dropped++;
      return;
    }
    this.#ended.push(span);
    if (++this.#batched >= this.#o.maxExportBatchSize) this.#send();
    else {
      if (this.#ended.length >= ENCODE_CHUNK) this.#encodeEnded();
      this.#timer ??= setTimeout(() => this.#send(), this.#o.scheduledDelayMillis).unref();
    }
  }

  /** Encodes the spans ended since the last chunk into their scopes' buffers, in the order they ended. */
  #encodeEnded(): void {
    const ended = this.#ended;
    for (let i = 0; i < ended.length; i++) {
      const span = ended[i]!;
      appendSpanField(this.#writerFor(span), span);
    }
    ended.length = 0;
  }

  async forceFlush(): Promise<void> {
    this.#send();
    await Promise.all(this.#exports);
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= (async () => {
      this.#send();
      await Promise.all(this.#exports);
      await this.#o.exporter.shutdown();
    })();
    return this.#shutdown;
  }

  #writerFor(span: ReadableSpan): ProtoWriter {
    let batch = this.#batches.get(span.resource);
    if (!batch) {
      batch = { resource: span.resource, scopes: new Map() };
      this.#batches.set(span.resource, batch);
    }
    let writer = batch.scopes.get(span.instrumentationScope);
    if (!writer) {
      writer = new ProtoWriter(32 * 1024);
      batch.scopes.set(span.instrumentationScope, writer);
    }
    return writer;
  }

  /** Frames what is batched into one request and hands it to the exporter. */
  #send(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#reportDropped();
    this.#encodeEnded();
    const spans = this.#batched;
    if (spans === 0) return;
    // Sized for the spans plus the resource and scope framing, so that it is not regrown (and copied) on the way.
    let encoded = 0;
    for (const { scopes } of this.#batches.values()) for (const writer of scopes.values()) encoded += writer.pos;
    const request = this.#requestWriter(encoded + 16 * 1024);
    for (const { resource, scopes } of this.#batches.values()) {
      const scopeBatches: ScopeBatch[] = [];
      for (const [scope, writer] of scopes) {
        if (writer.pos === 0) continue;
        scopeBatches.push({ scope, spans: writer.buf.subarray(0, writer.pos) });
      }
      if (scopeBatches.length > 0) encodeRequest(request, resource, scopeBatches);
      for (const writer of scopes.values()) writer.reset();
    }
    this.#batched = 0;
    this.#inFlight += spans;
    const done = this.#o.exporter
      .export({ body: request.buf.subarray(0, request.pos), spans, owned: true })
      .then((returned) => {
        if (returned !== undefined && this.#spare.length < SPARE_BUFFERS) this.#spare.push(returned);
      })
      .catch((err: unknown) => diag.error(`exporting ${spans} span${spans === 1 ? '' : 's'} failed: ${(err as Error).message}`))
      .finally(() => {
        this.#inFlight -= spans;
        this.#exports.delete(done);
      });
    this.#exports.add(done);
  }

  /** A writer over a spare buffer with room for `bytes`, else over a new one with headroom. */
  #requestWriter(bytes: number): ProtoWriter {
    while (this.#spare.length > 0) {
      const buffer = this.#spare.pop()!;
      if (buffer.byteLength >= bytes) return new ProtoWriter(buffer);
    }
    return new ProtoWriter(Math.ceil(bytes * REQUEST_HEADROOM));
  }

  #reportDropped(): void {
    if (this.#dropped === 0) return;
    diag.warn(`dropped ${this.#dropped} spans: the export queue (max_queue_size ${this.#o.maxQueueSize}) was full`);
    this.#dropped = 0;
  }
}

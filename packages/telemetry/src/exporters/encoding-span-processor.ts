/**
 * The span pipeline for `protocol: http/protobuf`: spans are encoded to OTLP protobuf the moment they end, into a
 * per-scope buffer, and the buffers are framed into one ExportTraceServiceRequest per batch and sent by the OTLP
 * exporter's own HTTP transport (retries, timeout, compression, OTEL_EXPORTER_OTLP_* settings).
 *
 * Why not the SDK's BatchSpanProcessor + OTLPTraceExporter: that pipeline keeps every ended span object alive until
 * its batch is exported. At 100 % sampling the proxy ends ~20k spans/s, so those objects outlive several young-
 * generation collections, get promoted, and the old generation's collections were most of what tracing cost
 * (loadtest/tracing-bench.ts). Encoded at the end, a span is a few hundred bytes in a Buffer and the span object
 * dies young. Batching, the scheduled delay, the bounded queue and flush-on-shutdown keep the
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

/** Sends one encoded request; rejects when the export failed (after the transport's own retries). */
export interface EncodedBatchExporter {
  export(batch: EncodedBatch): Promise<void>;
  shutdown(): Promise<void>;
}

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
    appendSpanField(this.#writerFor(span), span);
    if (++this.#batched >= this.#o.maxExportBatchSize) this.#send();
    else this.#timer ??= setTimeout(() => this.#send(), this.#o.scheduledDelayMillis).unref();
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
    const spans = this.#batched;
    if (spans === 0) return;
    // Sized for the spans plus the resource and scope framing, so that it is not regrown (and copied) on the way.
    let encoded = 0;
    for (const { scopes } of this.#batches.values()) for (const writer of scopes.values()) encoded += writer.pos;
    const request = new ProtoWriter(encoded + 16 * 1024);
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
      .catch((err: unknown) => diag.error(`exporting ${spans} span${spans === 1 ? '' : 's'} failed: ${(err as Error).message}`))
      .finally(() => {
        this.#inFlight -= spans;
        this.#exports.delete(done);
      });
    this.#exports.add(done);
  }

  #reportDropped(): void {
    if (this.#dropped === 0) return;
    diag.warn(`dropped ${this.#dropped} spans: the export queue (max_queue_size ${this.#o.maxQueueSize}) was full`);
    this.#dropped = 0;
  }
}

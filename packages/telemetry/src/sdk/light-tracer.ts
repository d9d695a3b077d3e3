/**
 * The tracer for `protocol: http/protobuf`: spans that record straight into the encoding processor, without the
 * SDK's span objects in between.
 *
 * Why not the SDK's Tracer and SpanImpl: at 100 % sampling the proxy starts two spans per request (~20k/s), and the
 * SDK's per-span work — attributes cleaned twice into new objects, the sampler chain, per-span metrics hooks, two
 * clocks read and converted at start and end, the processor fan-out — cost as much as the encoding and the export
 * together (loadtest/tracing-bench.ts: a processor that dropped every span still cost 8.9 % of throughput). The
 * spans here keep the SDK's observable behaviour for the parts the API defines and tiergate's configuration uses:
 *
 * - sampling: a root is kept when the trace-id ratio sampler (ratio-sampler.ts) keeps its trace id, a child follows
 *   its parent's sampled flag (the SDK's ParentBased defaults); a span not kept is the API's non-recording span,
 *   with fresh ids, that still propagates; suppressed tracing gives the invalid span, as the SDK does;
 * - attributes: the SDK's rules (valid values only, `undefined` ignored, at most 128 per span, events and links
 *   at most 128 each, oldest dropped, counted in the dropped counts); strings are not truncated (the SDK default);
 * - time: the start is the wall clock at start (ms), the end is the start plus the monotonic duration, as in the SDK;
 *   explicit start and end times are taken as given;
 * - status (OK is final, UNSET ignored, a message only with ERROR), updateName, recordException, end once.
 *
 * What it leaves out, on purpose: other span processors (tiergate configures exactly one) and the OTEL_SPAN_*
 * limit environment variables (tiergate's config does not expose limits). `http/json` keeps the SDK.
 */
import {
  type Attributes,
  type AttributeValue,
  context as apiContext,
  type Context,
  diag,
  type Exception,
  type HrTime,
  INVALID_SPAN_CONTEXT,
  type Link,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  type SpanStatus,
  SpanStatusCode,
  type TimeInput,
  TraceFlags,
  type Tracer,
  type TracerOptions,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import {
  cleanAttributes,
  cleanSimpleAttributes,
  type InstrumentationScope,
  isTimeInput,
  isTracingSuppressed,
  maybeAddAttribute,
  millisToHrTime,
  timeInputToHrTime,
} from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import type { PooledRandomIdGenerator } from './random-ids.ts';
import type { TraceIdThresholdSampler } from './ratio-sampler.ts';
import { startActiveSpan } from './start-active-span.ts';

/** The SDK's default span limits (SpanLimits defaults); tiergate does not configure others. */
const LIMIT = 128;
const DEFAULT_LIMITS = { attributeCountLimit: LIMIT, attributeValueLengthLimit: Number.POSITIVE_INFINITY } as const;
/** The event name and attribute keys of a recorded exception (OTel semantic conventions, as the SDK writes them). */
const EXCEPTION_EVENT = 'exception';

const NO_EVENTS: TimedEvent[] = Object.freeze([]) as unknown as TimedEvent[];
const NO_LINKS: Link[] = Object.freeze([]) as unknown as Link[];
const UNSET: SpanStatus = Object.freeze({ code: SpanStatusCode.UNSET });

/** Where ended spans go: the encoding processor (encoding-span-processor.ts). */
export interface EndedSpanSink {
  onEnd(span: ReadableSpan): void;
}

interface Shared {
  readonly resource: Resource;
  readonly ids: PooledRandomIdGenerator;
  readonly root: TraceIdThresholdSampler;
  readonly sink: EndedSpanSink;
}

export class LightTracerProvider implements TracerProvider {
  readonly #shared: Shared;
  readonly #tracers = new Map<string, Tracer>();

  constructor(resource: Resource, ids: PooledRandomIdGenerator, rootSampler: TraceIdThresholdSampler, sink: EndedSpanSink) {
    this.#shared = { resource, ids, root: rootSampler, sink };
  }

  getTracer(name: string, version?: string, options?: TracerOptions): Tracer {
    const key = `${name}@${version ?? ''}:${options?.schemaUrl ?? ''}`;
    let tracer = this.#tracers.get(key);
    if (!tracer) {
      // One scope object per tracer: the processor batches spans by scope identity.
      const scope: InstrumentationScope = { name, version, schemaUrl: options?.schemaUrl };
      tracer = new LightTracer(scope, this.#shared);
      this.#tracers.set(key, tracer);
    }
    return tracer;
  }
}

class LightTracer implements Tracer {
  readonly #scope: InstrumentationScope;
  readonly #shared: Shared;

  constructor(scope: InstrumentationScope, shared: Shared) {
    this.#scope = scope;
    this.#shared = shared;
  }

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = apiContext.active()): Span {
    if (isTracingSuppressed(ctx)) return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const { ids, root } = this.#shared;
    const parentSpan = options.root ? undefined : trace.getSpan(ctx);
    // A span of this tracer has valid ids by construction; any other context is checked (the API's regexes).
    const candidate = parentSpan?.spanContext();
    const parent =
      candidate !== undefined && (parentSpan instanceof LightSpan || trace.isSpanContextValid(candidate)) ? candidate : undefined;
    let traceId: string;
    let sampled: boolean;
    if (parent) {
      traceId = parent.traceId;
      sampled = (parent.traceFlags & TraceFlags.SAMPLED) !== 0;
    } else {
      traceId = ids.generateTraceId();
      sampled = root.keeps(traceId);
    }
    const spanContext: SpanContext = {
      traceId,
      spanId: ids.generateSpanId(),
      traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
      traceState: parent?.traceState,
    };
    if (!sampled) return trace.wrapSpanContext(spanContext);
    return new LightSpan(this.#shared, this.#scope, spanContext, parent, name, options);
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...args: unknown[]): ReturnType<F> {
    return startActiveSpan<F>(this, name, args);
  }
}

/** A recording span; what the encoder reads is the SDK's ReadableSpan shape. */
export class LightSpan implements Span, ReadableSpan {
  readonly #shared: Shared;
  readonly #context: SpanContext;
  readonly instrumentationScope: InstrumentationScope;
  readonly parentSpanContext: SpanContext | undefined;
  readonly kind: SpanKind;
  name: string;
  /**
   * The attributes as two parallel lists, in the order first set (what a plain object gives for non-numeric keys).
   * The encoder reads these (`attributeKeys`/`attributeValues`); `attributes` builds the SDK's object on demand.
   * An object filled with a dozen keys per span cost a keyed store and an own-property check per attribute.
   */
  readonly attributeKeys: string[] = [];
  readonly attributeValues: AttributeValue[] = [];
  #droppedAttributes: number;
  /** Shared empty lists and status until a span has its own (most have none): three objects fewer per span. */
  events: TimedEvent[] = NO_EVENTS;
  #droppedEvents = 0;
  links: Link[];
  #droppedLinks = 0;
  status: SpanStatus = UNSET;
  /** Wall-clock start in ms (Date.now()), or an explicit start time. */
  readonly #startMs: number;
  /** The start as HrTime: an explicit start time, else made from #startMs when first read. */
  #startHr: HrTime | undefined;
  readonly #explicitStart: boolean;
  /** performance.now() at the start, for the duration. */
  readonly #startPerf: number;
  #endTime: HrTime | undefined;

  constructor(
    shared: Shared,
    scope: InstrumentationScope,
    ctx: SpanContext,
    parent: SpanContext | undefined,
    name: string,
    options: SpanOptions,
  ) {
    this.#shared = shared;
    this.#context = ctx;
    this.instrumentationScope = scope;
    this.parentSpanContext = parent;
    this.name = name;
    this.kind = options.kind ?? SpanKind.INTERNAL;
    this.#startPerf = performance.now();
    this.#startMs = Date.now();
    this.#explicitStart = options.startTime !== undefined;
    this.#startHr = options.startTime === undefined ? undefined : timeInputToHrTime(options.startTime);
    this.#droppedAttributes = 0;
    if (options.attributes) this.setAttributes(options.attributes);
    this.links = NO_LINKS;
    if (options.links) for (const link of options.links) this.addLink(link);
  }

  spanContext(): SpanContext {
    return this.#context;
  }

  setAttribute(key: string, value: AttributeValue | undefined): this {
    if (this.#endedWarning()) return this;
    // The common case, a primitive, without the SDK helper; the rest goes through the helper (validation, copies).
    const type = typeof value;
    if ((type === 'string' || type === 'number' || type === 'boolean') && key.length > 0) {
      this.#store(key, value as AttributeValue);
      return this;
    }
    // The helper's checks in its order (undefined, empty key, the limit for a new key, the value), on a scratch
    // object: it then holds the cleaned copy, stored here as a new key or over the old value.
    const one: Attributes = {};
    const count = this.attributeKeys.includes(key) ? 0 : this.attributeKeys.length;
    const decision = maybeAddAttribute({ key, value, attributes: one, limits: DEFAULT_LIMITS, currentAttributesCount: count });
    if (decision === 2) return this.#dropAttribute(); // AddAttributeDecision.DROP_LIMIT_REACHED
    if (decision === 3) this.#store(key, one[key] as AttributeValue); // AddAttributeDecision.ADD_NEW
    return this;
  }

  /** Sets a valid attribute: replaces the value of a key already set, else adds it while under the limit. */
  #store(key: string, value: AttributeValue): void {
    const keys = this.attributeKeys;
    const i = keys.indexOf(key);
    if (i >= 0) this.attributeValues[i] = value;
    else if (keys.length >= LIMIT) this.#dropAttribute();
    else {
      keys.push(key);
      this.attributeValues.push(value);
    }
  }

  setAttributes(attributes: Attributes): this {
    for (const key in attributes) if (Object.hasOwn(attributes, key)) this.setAttribute(key, attributes[key]);
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.#endedWarning()) return this;
    let attributes: Attributes | undefined;
    if (isTimeInput(attributesOrTime)) time ??= attributesOrTime;
    else attributes = attributesOrTime;
    if (this.events === NO_EVENTS) this.events = [];
    if (this.events.length >= LIMIT) {
      this.events.shift();
      this.#droppedEvents++;
    }
    const cleaned = cleanSimpleAttributes(attributes, { attributeCountLimit: LIMIT, attributeValueLengthLimit: Number.POSITIVE_INFINITY });
    this.events.push({ name, time: time === undefined ? this.#now() : timeInputToHrTime(time), ...cleaned });
    return this;
  }

  addLink(link: Link): this {
    if (this.#endedWarning()) return this;
    if (this.links === NO_LINKS) this.links = [];
    if (this.links.length >= LIMIT) {
      this.links.shift();
      this.#droppedLinks++;
    }
    this.links.push({ context: link.context, ...cleanAttributes(link.attributes, DEFAULT_LIMITS) });
    return this;
  }

  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.#endedWarning() || status.code === SpanStatusCode.UNSET || this.status.code === SpanStatusCode.OK) return this;
    this.status =
      status.code === SpanStatusCode.ERROR && typeof status.message === 'string'
        ? { code: status.code, message: status.message }
        : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (!this.#endedWarning()) this.name = name;
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.#endTime !== undefined) {
      diag.error(`${this.name} ${this.#context.traceId}-${this.#context.spanId} - You can only call end() on a span once.`);
      return;
    }
    let end = endTime === undefined ? this.#now() : timeInputToHrTime(endTime);
    const start = this.startTime;
    if (end[0] < start[0] || (end[0] === start[0] && end[1] < start[1])) end = start;
    this.#endTime = end;
    this.#shared.sink.onEnd(this);
  }

  isRecording(): boolean {
    return this.#endTime === undefined;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === 'string') attributes['exception.message'] = exception;
    else if (exception) {
      if (exception.code) attributes['exception.type'] = exception.code.toString();
      else if (exception.name) attributes['exception.type'] = exception.name;
      if (exception.message) attributes['exception.message'] = exception.message;
      if (exception.stack) attributes['exception.stacktrace'] = exception.stack;
    }
    if (attributes['exception.type'] || attributes['exception.message']) this.addEvent(EXCEPTION_EVENT, attributes, time);
    else diag.warn(`Failed to record an exception ${exception}`);
  }

  // ---- ReadableSpan (what the encoder and the processor read)

  /** The attributes as the SDK's object (a new one per call; the encoder reads the lists instead). */
  get attributes(): Attributes {
    const out: Attributes = {};
    const keys = this.attributeKeys;
    for (let i = 0; i < keys.length; i++) out[keys[i] as string] = this.attributeValues[i];
    return out;
  }

  get startTime(): HrTime {
    if (this.#startHr === undefined) this.#startHr = millisToHrTime(this.#startMs);
    return this.#startHr;
  }

  get endTime(): HrTime {
    return this.#endTime ?? [0, 0];
  }

  get duration(): HrTime {
    const end = this.#endTime;
    if (end === undefined) return [-1, -1];
    const start = this.startTime;
    let seconds = end[0] - start[0];
    let nanos = end[1] - start[1];
    if (nanos < 0) {
      seconds -= 1;
      nanos += 1e9;
    }
    return [seconds, nanos];
  }

  get ended(): boolean {
    return this.#endTime !== undefined;
  }

  get resource(): Resource {
    return this.#shared.resource;
  }

  get droppedAttributesCount(): number {
    return this.#droppedAttributes;
  }

  get droppedEventsCount(): number {
    return this.#droppedEvents;
  }

  get droppedLinksCount(): number {
    return this.#droppedLinks;
  }

  /** Now: the start plus the monotonic time since (the SDK's rule), or the wall clock after an explicit start. */
  #now(): HrTime {
    if (this.#explicitStart) return millisToHrTime(Date.now());
    // addHrTimes(millisToHrTime(start), millisToHrTime(elapsed)), the SDK's arithmetic, with one array made, not three.
    const start = this.#startMs;
    const elapsed = performance.now() - this.#startPerf;
    let seconds = Math.trunc(start / 1000) + Math.trunc(elapsed / 1000);
    let nanos = Math.round((start % 1000) * 1e6) + Math.round((elapsed % 1000) * 1e6);
    if (nanos >= 1e9) {
      nanos -= 1e9;
      seconds += 1;
    }
    return [seconds, nanos];
  }

  #dropAttribute(): this {
    if (++this.#droppedAttributes === 1) diag.warn('Dropping extra attributes.');
    return this;
  }

  #endedWarning(): boolean {
    if (this.#endTime === undefined) return false;
    const { traceId, spanId } = this.#context;
    diag.warn(`Cannot execute the operation on ended Span {traceId: ${traceId}, spanId: ${spanId}}`);
    return true;
  }
}

/**
 * OTLP protobuf encoding of SDK spans (opentelemetry-proto trace/v1 and collector/trace/v1), split in two so a
 * span can be encoded the moment it ends and framed into an ExportTraceServiceRequest later:
 * `encodeSpan` writes one `Span` message body; `encodeRequest` wraps batches of those per instrumentation scope
 * with the resource. Field order and defaults follow @opentelemetry/otlp-transformer's ProtobufTraceSerializer,
 * so the same spans give the same bytes (test/otlp-span-encoder.test.ts).
 */
import type { Attributes, AttributeValue, HrTime, Link, SpanContext, SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import type { ProtoWriter } from './proto-writer.ts';

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;
/** Span.flags bits 8 and 9: "the context's is-remote is known", "and it is remote" (trace/v1 SpanFlags). */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;
const TWO_POW_32 = 4294967296;
const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

/**
 * A span that keeps its attributes as two parallel lists (the light tracer's LightSpan): encoded from the lists,
 * without building the `attributes` object.
 */
interface ListedAttributes {
  readonly attributeKeys: readonly string[];
  readonly attributeValues: readonly unknown[];
}

/** Writes the body of one `Span` message (without its tag and length). */
export function encodeSpan(w: ProtoWriter, span: ReadableSpan | (ReadableSpan & ListedAttributes)): void {
  const ctx = span.spanContext();
  contextFields(w, ctx);
  const parent = span.parentSpanContext;
  if (parent?.spanId) {
    w.tag(4, LEN);
    w.hexBytes(parent.spanId);
  }
  w.tag(5, LEN);
  w.string(span.name);
  // OTLP's SpanKind is the API's plus one (0 is UNSPECIFIED).
  const kind = span.kind == null ? 0 : span.kind + 1;
  if (kind !== 0) {
    w.tag(6, VARINT);
    w.varint(kind);
  }
  w.tag(7, FIXED64);
  hrTime(w, span.startTime);
  w.tag(8, FIXED64);
  hrTime(w, span.endTime);
  if ('attributeKeys' in span) listedAttributes(w, span.attributeKeys, span.attributeValues, 9);
  else attributes(w, span.attributes, 9);
  w.tag(10, VARINT);
  w.varint(span.droppedAttributesCount);
  for (const event of span.events) {
    w.tag(11, LEN);
    encodeEvent(w, event);
  }
  w.tag(12, VARINT);
  w.varint(span.droppedEventsCount);
  for (const link of span.links) {
    w.tag(13, LEN);
    encodeLink(w, link);
  }
  w.tag(14, VARINT);
  w.varint(span.droppedLinksCount);
  w.tag(15, LEN);
  encodeStatus(w, span.status);
  w.tag(16, FIXED32);
  w.fixed32(spanFlags(ctx, parent?.isRemote));
}

/** One scope's spans for `encodeRequest`: the scope and its `Span` bodies, each prefixed by tag 2 and length. */
export interface ScopeBatch {
  readonly scope: InstrumentationScope;
  /** Concatenated `ScopeSpans.spans` fields (tag, length, Span body) as `appendSpanField` writes them. */
  readonly spans: Uint8Array;
}

/** Appends one `ScopeSpans.spans` field (tag 2, length, body) for `span` to `w`. */
export function appendSpanField(w: ProtoWriter, span: ReadableSpan): void {
  w.tag(2, LEN);
  const start = w.begin();
  encodeSpan(w, span);
  w.end(start);
}

/** Writes a whole ExportTraceServiceRequest: one ResourceSpans holding one ScopeSpans per batch. */
export function encodeRequest(w: ProtoWriter, resource: Resource, scopes: readonly ScopeBatch[]): void {
  w.tag(1, LEN);
  const resourceSpans = w.begin();
  w.tag(1, LEN);
  const res = w.begin();
  attributes(w, resource.attributes, 1);
  w.tag(2, VARINT);
  w.varint(0);
  w.end(res);
  for (const { scope, spans } of scopes) {
    w.tag(2, LEN);
    const scopeSpans = w.begin();
    encodeScope(w, scope);
    w.raw(spans);
    if (scope.schemaUrl) {
      w.tag(3, LEN);
      w.string(scope.schemaUrl);
    }
    w.end(scopeSpans);
  }
  if (resource.schemaUrl) {
    w.tag(3, LEN);
    w.string(resource.schemaUrl);
  }
  w.end(resourceSpans);
}

function encodeScope(w: ProtoWriter, scope: InstrumentationScope & { attributes?: Attributes; droppedAttributesCount?: number }): void {
  w.tag(1, LEN);
  const start = w.begin();
  w.tag(1, LEN);
  w.string(scope.name);
  if (scope.version) {
    w.tag(2, LEN);
    w.string(scope.version);
  }
  if (scope.attributes) attributes(w, scope.attributes, 3);
  if (scope.droppedAttributesCount) {
    w.tag(4, VARINT);
    w.varint(scope.droppedAttributesCount);
  }
  w.end(start);
}

function encodeEvent(w: ProtoWriter, event: TimedEvent): void {
  const start = w.begin();
  w.tag(1, FIXED64);
  hrTime(w, event.time);
  w.tag(2, LEN);
  w.string(event.name);
  if (event.attributes) attributes(w, event.attributes, 3);
  w.tag(4, VARINT);
  w.varint(event.droppedAttributesCount ?? 0);
  w.end(start);
}

function encodeLink(w: ProtoWriter, link: Link & { droppedAttributesCount?: number }): void {
  const start = w.begin();
  const ctx = link.context;
  contextFields(w, ctx);
  if (link.attributes) attributes(w, link.attributes, 4);
  w.tag(5, VARINT);
  w.varint(link.droppedAttributesCount ?? 0);
  w.tag(6, FIXED32);
  w.fixed32(spanFlags(ctx, ctx.isRemote));
  w.end(start);
}

/** Fields 1–3 of Span and of Span.Link alike: trace_id, span_id, trace_state. */
function contextFields(w: ProtoWriter, ctx: SpanContext): void {
  w.tag(1, LEN);
  w.hexBytes(ctx.traceId);
  w.tag(2, LEN);
  w.hexBytes(ctx.spanId);
  const traceState = ctx.traceState?.serialize();
  if (traceState) {
    w.tag(3, LEN);
    w.string(traceState);
  }
}

function encodeStatus(w: ProtoWriter, status: SpanStatus): void {
  const start = w.begin();
  if (status.message) {
    w.tag(2, LEN);
    w.string(status.message);
  }
  w.tag(3, VARINT);
  w.varint(status.code);
  w.end(start);
}

function spanFlags(ctx: SpanContext, isRemote: boolean | undefined): number {
  return (ctx.traceFlags & 0xff) | HAS_IS_REMOTE | (isRemote ? IS_REMOTE : 0);
}

/** HrTime [seconds, nanoseconds] as fixed64 nanoseconds since the epoch, without BigInt (exact to the ns). */
function hrTime(w: ProtoWriter, [seconds, nanos]: HrTime): void {
  // seconds × 1e9 exceeds 2^53: split seconds at 16 bits so every partial product stays exact.
  const fromLow = (seconds & 0xffff) * 1e9;
  const fromHigh = ((seconds / 65536) >>> 0) * 1e9;
  const low = (fromLow >>> 0) + (fromHigh & 0xffff) * 65536 + nanos;
  const high = Math.floor(fromLow / TWO_POW_32) + ((fromHigh / 65536) >>> 0) + Math.floor(low / TWO_POW_32);
  w.fixed64(low >>> 0, high >>> 0);
}

function attributes(w: ProtoWriter, attrs: Attributes, field: number): void {
  for (const key in attrs) {
    if (Object.hasOwn(attrs, key)) attributeField(w, field, key, attrs[key]);
  }
}

function listedAttributes(w: ProtoWriter, keys: readonly string[], values: readonly unknown[], field: number): void {
  for (let i = 0; i < keys.length; i++) attributeField(w, field, keys[i] as string, values[i]);
}

/**
 * What the encoder keeps of an attribute key it has seen: its encoded `KeyValue.key` field (tag, length, UTF-8), and
 * the encoded length-prefixed `KeyValue` of each short value written with it. A tracer writes the same few dozen
 * keys on every span, most with a handful of values (a method, a port, a pool, a status): copying their bytes is
 * cheaper than encoding the strings each time.
 */
interface KeyCache {
  readonly field: Uint8Array;
  /** Undefined once the key had VALUES_PER_KEY values (a path, an address): its values are encoded every time. */
  values: Map<unknown, Uint8Array> | undefined;
}

/**
 * Bounded: keys beyond the first KEY_CACHE_MAX, and keys over 128 characters, are encoded every time (an
 * instrumentation that makes up keys per span); a key keeps at most VALUES_PER_KEY values of at most
 * VALUE_CACHE_CHARS characters, and all keys together at most VALUE_CACHE_MAX (~1 MB at most).
 */
const keyCache = new Map<string, KeyCache>();
const KEY_CACHE_MAX = 1024;
const VALUES_PER_KEY = 64;
const VALUE_CACHE_CHARS = 64;
const VALUE_CACHE_MAX = 4096;
let cachedValues = 0;

/** One attribute as field `field` of the message being written: tag, length, KeyValue. */
function attributeField(w: ProtoWriter, field: number, key: string, value: unknown): void {
  w.tag(field, LEN);
  const cache = keyCache.get(key);
  const values = cache?.values;
  const type = typeof value;
  if (
    values === undefined ||
    !(type === 'number' || type === 'boolean' || (type === 'string' && (value as string).length <= VALUE_CACHE_CHARS))
  ) {
    const start = w.begin();
    keyValue(w, key, value);
    w.end(start);
    return;
  }
  const bytes = values.get(value);
  if (bytes !== undefined) {
    w.small(bytes);
    return;
  }
  const from = w.pos;
  const start = w.begin();
  keyValue(w, key, value);
  w.end(start);
  if (values.size < VALUES_PER_KEY && cachedValues < VALUE_CACHE_MAX) {
    values.set(value, Uint8Array.prototype.slice.call(w.buf, from, w.pos));
    cachedValues++;
  } else cache!.values = undefined;
}

/** A KeyValue message body; the key's field from the cache (and put there, while it has room). */
function keyValue(w: ProtoWriter, key: string, value: unknown): void {
  const cache = keyCache.get(key);
  if (cache !== undefined) w.small(cache.field);
  else {
    const start = w.pos;
    w.tag(1, LEN);
    w.string(key);
    if (keyCache.size < KEY_CACHE_MAX && key.length <= 128) {
      keyCache.set(key, { field: Uint8Array.prototype.slice.call(w.buf, start, w.pos), values: new Map() });
    }
  }
  w.tag(2, LEN);
  const start = w.begin();
  anyValue(w, value);
  w.end(start);
}

/** An AnyValue from an attribute value: the SDK's mapping (integers as int_value, other numbers as double_value). */
function anyValue(w: ProtoWriter, value: AttributeValue | unknown): void {
  switch (typeof value) {
    case 'string':
      w.tag(1, LEN);
      w.string(value);
      return;
    case 'boolean':
      w.tag(2, VARINT);
      w.varint(value ? 1 : 0);
      return;
    case 'number':
      if (Number.isInteger(value) && value >= MIN_INT64 && value < MAX_INT64) {
        w.tag(3, VARINT);
        w.varint(value);
      } else {
        w.tag(4, FIXED64);
        w.double(value);
      }
      return;
  }
  if (value instanceof Uint8Array) {
    w.tag(7, LEN);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    w.tag(5, LEN);
    const array = w.begin();
    for (const item of value) {
      w.tag(1, LEN);
      const start = w.begin();
      anyValue(w, item);
      w.end(start);
    }
    w.end(array);
  } else if (typeof value === 'object' && value !== null) {
    w.tag(6, LEN);
    const list = w.begin();
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue;
      w.tag(1, LEN);
      const start = w.begin();
      keyValue(w, key, (value as Record<string, unknown>)[key]);
      w.end(start);
    }
    w.end(list);
  }
}

/** An attribute value as exported: OTLP's AnyValue flattened to plain JavaScript. */
export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };

export type CollectedSpanKind = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
export type CollectedStatusCode = 'UNSET' | 'OK' | 'ERROR';

/** One span as a receiver saw it, ids as lowercase hex, independent of the wire encoding. */
export interface CollectedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Undefined for a root span. */
  readonly parentSpanId: string | undefined;
  readonly name: string;
  readonly kind: CollectedSpanKind;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  /** The span's resource attributes (service.name, host.name, service.instance.id, …). */
  readonly resource: Readonly<Record<string, AttributeValue>>;
  /** `resource['service.name']`, the service Jaeger files the span under. */
  readonly serviceName: string | undefined;
  /** Name of the instrumentation scope (the tracer's name). */
  readonly scope: string | undefined;
  readonly status: { readonly code: CollectedStatusCode; readonly message: string | undefined };
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
  /** How the exporter sent it. */
  readonly encoding: 'protobuf' | 'json';
}

const KINDS: readonly CollectedSpanKind[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS_CODES: readonly CollectedStatusCode[] = ['UNSET', 'OK', 'ERROR'];

// The loose OTLP/JSON shape both decoders produce; every field may be absent (proto3 defaults).
interface WireKeyValue {
  key?: string;
  value?: WireAnyValue;
}
interface WireAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: WireAnyValue[] };
  kvlistValue?: { values?: WireKeyValue[] };
  bytesValue?: string;
}
interface WireSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: WireKeyValue[];
  status?: { code?: number; message?: string };
}
interface WireRequest {
  resourceSpans?: {
    resource?: { attributes?: WireKeyValue[] };
    scopeSpans?: { scope?: { name?: string }; spans?: WireSpan[] }[];
  }[];
}

/**
 * Turns a decoded ExportTraceServiceRequest (OTLP/JSON shape) into flat spans. Ids are base64 in
 * the protobuf decoding and hex in OTLP/JSON (the OTLP spec's JSON mapping exception); ids that
 * are not 16/32 hex digits are read as base64, which some older JSON exporters sent.
 */
export function collectSpans(request: unknown, encoding: 'protobuf' | 'json'): CollectedSpan[] {
  const out: CollectedSpan[] = [];
  const toHex = encoding === 'protobuf' ? base64ToHex : jsonIdToHex;
  for (const rs of (request as WireRequest).resourceSpans ?? []) {
    const resource = toRecord(rs.resource?.attributes);
    const serviceName = typeof resource['service.name'] === 'string' ? resource['service.name'] : undefined;
    for (const ss of rs.scopeSpans ?? []) {
      for (const span of ss.spans ?? []) {
        const parent = span.parentSpanId ? toHex(span.parentSpanId) : '';
        out.push({
          traceId: toHex(span.traceId ?? ''),
          spanId: toHex(span.spanId ?? ''),
          parentSpanId: parent === '' ? undefined : parent,
          name: span.name ?? '',
          kind: KINDS[span.kind ?? 0] ?? 'UNSPECIFIED',
          attributes: toRecord(span.attributes),
          resource,
          serviceName,
          scope: ss.scope?.name,
          status: { code: STATUS_CODES[span.status?.code ?? 0] ?? 'UNSET', message: span.status?.message || undefined },
          startTimeUnixNano: String(span.startTimeUnixNano ?? '0'),
          endTimeUnixNano: String(span.endTimeUnixNano ?? '0'),
          encoding,
        });
      }
    }
  }
  return out;
}

function toRecord(kvs: WireKeyValue[] | undefined): Record<string, AttributeValue> {
  const record: Record<string, AttributeValue> = {};
  for (const kv of kvs ?? []) if (kv.key !== undefined) record[kv.key] = toValue(kv.value);
  return record;
}

function toValue(v: WireAnyValue | undefined): AttributeValue {
  if (v === undefined) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(toValue);
  if (v.kvlistValue !== undefined) return toRecord(v.kvlistValue.values);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return null;
}

function base64ToHex(id: string): string {
  return Buffer.from(id, 'base64').toString('hex');
}

function jsonIdToHex(id: string): string {
  return /^(?:[0-9a-f]{16}|[0-9a-f]{32})$/i.test(id) ? id.toLowerCase() : base64ToHex(id);
}

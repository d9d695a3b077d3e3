import protobuf from 'protobufjs';

/*
 * The OTLP trace request schema, for protobufjs to decode what real exporters send.
 *
 * Why it is written here: the installed @opentelemetry/otlp-transformer (0.301) encodes with a
 * hand-written writer and ships neither .proto files nor a decoder, and no maintained npm package
 * ships the opentelemetry-proto definitions. So this is the subset of the OTLP 1.x messages a
 * receiver needs, field numbers as fixed by the OTLP specification (opentelemetry-proto,
 * collector/trace/v1, trace/v1, resource/v1, common/v1). protobufjs does all wire decoding, and
 * skips fields left out here (events, links, flags…), exactly as proto3 readers must.
 */
const OTLP_TRACE_PROTO = `
syntax = "proto3";
package otlp;

message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
message ExportTracePartialSuccess { int64 rejected_spans = 1; string error_message = 2; }

message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }

message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  string name = 5;
  SpanKind kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  Status status = 15;
}
enum SpanKind {
  SPAN_KIND_UNSPECIFIED = 0; SPAN_KIND_INTERNAL = 1; SPAN_KIND_SERVER = 2;
  SPAN_KIND_CLIENT = 3; SPAN_KIND_PRODUCER = 4; SPAN_KIND_CONSUMER = 5;
}
message Status { string message = 2; StatusCode code = 3; }
enum StatusCode { STATUS_CODE_UNSET = 0; STATUS_CODE_OK = 1; STATUS_CODE_ERROR = 2; }

message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
`;

const root = protobuf.parse(OTLP_TRACE_PROTO).root;
const requestType = root.lookupType('otlp.ExportTraceServiceRequest');
const responseType = root.lookupType('otlp.ExportTraceServiceResponse');

/**
 * Decodes a binary OTLP ExportTraceServiceRequest into the OTLP/JSON shape (lowerCamelCase keys,
 * enums as numbers, 64-bit integers as decimal strings) with ids as base64 strings, which
 * `collectSpans` then normalises. Throws protobufjs's error on malformed input.
 */
export function decodeTraceRequestProtobuf(bytes: Uint8Array): unknown {
  const message = requestType.decode(bytes);
  return requestType.toObject(message, { longs: String, enums: Number, bytes: String, defaults: false, oneofs: false });
}

/** Encodes an ExportTraceServiceResponse (empty unless spans were rejected) for a protobuf answer. */
export function encodeTraceResponseProtobuf(rejectedSpans = 0, errorMessage = ''): Uint8Array {
  const body = rejectedSpans > 0 ? { partialSuccess: { rejectedSpans, errorMessage } } : {};
  return responseType.encode(responseType.fromObject(body)).finish();
}

/**
 * Encodes an ExportTraceServiceRequest from the OTLP/JSON-like shape (ids as base64 or Uint8Array):
 * for tests that need a protobuf body without running an SDK.
 */
export function encodeTraceRequestProtobuf(request: object): Uint8Array {
  return requestType.encode(requestType.fromObject(request)).finish();
}

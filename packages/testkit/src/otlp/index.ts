export type { AttributeValue, CollectedSpan, CollectedSpanKind, CollectedStatusCode } from './collect-spans.ts';
export { collectSpans } from './collect-spans.ts';
export { HTTP_SPAN_CONVENTIONS, httpConventionViolations } from './http-conventions.ts';
export { decodeTraceRequestProtobuf, encodeTraceRequestProtobuf, encodeTraceResponseProtobuf } from './otlp-trace-schema.ts';
export { type OtlpReceiver, type OtlpReceiverOptions, startOtlpReceiver } from './receiver.ts';

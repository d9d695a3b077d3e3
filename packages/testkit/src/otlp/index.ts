export type { AttributeValue, CollectedSpan, CollectedSpanKind, CollectedStatusCode } from './collect-spans.ts';
export { collectSpans } from './collect-spans.ts';
export { decodeTraceRequestProtobuf, encodeTraceRequestProtobuf, encodeTraceResponseProtobuf } from './otlp-trace-schema.ts';
export { type OtlpReceiver, type OtlpReceiverOptions, startOtlpReceiver } from './receiver.ts';

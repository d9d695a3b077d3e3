import type { Attributes, Context, Link, SpanKind } from '@opentelemetry/api';
import { type Sampler, SamplingDecision, type SamplingResult } from '@opentelemetry/sdk-trace';

/** The rightmost 56 bits of a trace id, as hex: its last 14 characters. */
const RANDOM_HEX_CHARS = 14;
const SAMPLED: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED });
const DROPPED: SamplingResult = Object.freeze({ decision: SamplingDecision.NOT_RECORD });

/**
 * The root sampler: keeps a trace when its id's rightmost 56 bits R are at least the rejection threshold
 * T = (1 − ratio) × 2^56 — the OpenTelemetry specification's TraceIdRatioBased algorithm (consistent probability
 * sampling, "TraceIdRatioBased: compare the 56 least significant bits"), so every tier deciding on the same trace
 * id with the same ratio decides alike.
 *
 * Written here rather than using the SDK's TraceIdRatioBasedSampler, which still folds all 128 bits with a
 * character loop (its pre-spec algorithm): R and T are compared as 14-character lowercase hex strings, which
 * order like the numbers they spell, so a decision is one substring and one string comparison. T is computed with
 * BigInt once, at construction.
 */
export class TraceIdThresholdSampler implements Sampler {
  readonly #ratio: number;
  /** undefined: sample everything (ratio 1); null: nothing (ratio 0). */
  readonly #threshold: string | undefined | null;

  constructor(ratio: number) {
    this.#ratio = Number.isNaN(ratio) ? 0 : Math.min(1, Math.max(0, ratio));
    this.#threshold = this.#ratio >= 1 ? undefined : this.#ratio <= 0 ? null : rejectionThreshold(this.#ratio);
  }

  shouldSample(
    _context: Context,
    traceId: string,
    _name?: string,
    _kind?: SpanKind,
    _attributes?: Attributes,
    _links?: Link[],
  ): SamplingResult {
    return this.keeps(traceId) ? SAMPLED : DROPPED;
  }

  /** The decision alone, for a root trace id (32 lowercase hex digits). */
  keeps(traceId: string): boolean {
    const t = this.#threshold;
    if (t === undefined) return true;
    if (t === null || traceId.length !== 32) return false;
    return traceId.slice(32 - RANDOM_HEX_CHARS) >= t;
  }

  toString(): string {
    return `TraceIdThreshold{${this.#ratio}}`;
  }
}

/** T = round((1 − ratio) × 2^56) as 14 lowercase hex digits (ratio strictly between 0 and 1). */
export function rejectionThreshold(ratio: number): string {
  const scale = 2n ** 56n;
  // The ratio is a double: scale it in BigInt with 2^53 precision, then round to 56 bits.
  const kept = (BigInt(Math.round(ratio * 2 ** 53)) * scale) / 2n ** 53n;
  const t = scale - kept;
  return (t >= scale ? scale - 1n : t).toString(16).padStart(RANDOM_HEX_CHARS, '0');
}

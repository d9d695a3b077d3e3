import { ROOT_CONTEXT } from '@opentelemetry/api';
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { PooledRandomIdGenerator } from '../src/sdk/random-ids.ts';
import { rejectionThreshold, TraceIdThresholdSampler } from '../src/sdk/ratio-sampler.ts';

const decide = (s: TraceIdThresholdSampler, traceId: string) => s.shouldSample(ROOT_CONTEXT, traceId).decision;
const SAMPLED = SamplingDecision.RECORD_AND_SAMPLED;
const DROPPED = SamplingDecision.NOT_RECORD;

describe('TraceIdThresholdSampler (OTel spec: R = rightmost 56 bits, sampled iff R ≥ T = (1 − p) × 2^56)', () => {
  it('computes the rejection threshold T as 14 hex digits', () => {
    expect(rejectionThreshold(0.5)).toBe('80000000000000');
    expect(rejectionThreshold(0.25)).toBe('c0000000000000');
    // (1 − 0.01) × 2^56 = 71337018097548656.64; p is taken to 53 bits first, so T = …656.
    expect(rejectionThreshold(0.01)).toBe('fd70a3d70a3d70');
    expect(rejectionThreshold(2 ** -56)).toBe('ffffffffffffff');
  });

  it('decides on the rightmost 56 bits only, exactly at the threshold', () => {
    const half = new TraceIdThresholdSampler(0.5);
    // The leftmost 72 bits do not matter.
    expect(decide(half, `ffffffffffffffffff${'7fffffffffffff'}`)).toBe(DROPPED);
    expect(decide(half, `000000000000000000${'80000000000000'}`)).toBe(SAMPLED);
    expect(decide(half, `123456789abcdef012${'ffffffffffffff'}`)).toBe(SAMPLED);
    const one = new TraceIdThresholdSampler(0.01);
    expect(decide(one, `${'0'.repeat(18)}fd70a3d70a3d6f`)).toBe(DROPPED);
    expect(decide(one, `${'0'.repeat(18)}fd70a3d70a3d70`)).toBe(SAMPLED);
  });

  it('ratio 1 keeps every trace, ratio 0 (and NaN) none; an id that is not 32 hex digits is dropped', () => {
    expect(decide(new TraceIdThresholdSampler(1), `${'0'.repeat(31)}1`)).toBe(SAMPLED);
    expect(decide(new TraceIdThresholdSampler(0), 'f'.repeat(32))).toBe(DROPPED);
    expect(decide(new TraceIdThresholdSampler(Number.NaN), 'f'.repeat(32))).toBe(DROPPED);
    expect(decide(new TraceIdThresholdSampler(0.5), 'ff')).toBe(DROPPED);
    expect(new TraceIdThresholdSampler(0.25).toString()).toBe('TraceIdThreshold{0.25}');
  });

  it('keeps the configured fraction of generated ids, like the SDK sampler does (100,000 ids)', () => {
    const ids = new PooledRandomIdGenerator();
    for (const ratio of [0.01, 0.1, 0.5]) {
      const ours = new TraceIdThresholdSampler(ratio);
      const sdk = new TraceIdRatioBasedSampler(ratio);
      let kept = 0;
      let sdkKept = 0;
      for (let i = 0; i < 100_000; i++) {
        const id = ids.generateTraceId();
        if (decide(ours, id) === SAMPLED) kept++;
        if (sdk.shouldSample(ROOT_CONTEXT, id).decision === SAMPLED) sdkKept++;
      }
      // Binomial(100000, p): 6 standard deviations either side.
      const sd = Math.sqrt(100_000 * ratio * (1 - ratio));
      expect(Math.abs(kept - 100_000 * ratio)).toBeLessThan(6 * sd);
      expect(Math.abs(sdkKept - 100_000 * ratio)).toBeLessThan(6 * sd);
    }
  });
});

describe('PooledRandomIdGenerator', () => {
  it('hands out well-formed, distinct ids across many pool refills', () => {
    const ids = new PooledRandomIdGenerator();
    const traces = new Set<string>();
    const spans = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      traces.add(ids.generateTraceId());
      spans.add(ids.generateSpanId());
    }
    expect(traces.size).toBe(20_000);
    expect(spans.size).toBe(20_000);
    for (const t of traces) expect(t).toMatch(/^[0-9a-f]{32}$/);
    for (const s of spans) expect(s).toMatch(/^[0-9a-f]{16}$/);
    // Every hex digit turns up in every position: the pool is not reused or shifted.
    const seen = Array.from({ length: 32 }, () => new Set<string>());
    for (const t of traces) for (let i = 0; i < 32; i++) seen[i]!.add(t[i]!);
    expect(seen.every((s) => s.size === 16)).toBe(true);
  });
});

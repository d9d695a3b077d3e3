import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { duration, size } from '../src/units.ts';

describe('duration (nginx style, normalised to ms)', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1.5s', 1_500],
    ['30', 30_000],
    [' 2s ', 2_000],
    [10, 10_000],
    [0.25, 250],
    [0, 0],
  ] as const)('%j → %d ms', (input, ms) => {
    expect(duration.parse(input)).toBe(ms);
  });

  it.each(['10 seconds', '10S', '-1s', '1w', 's', '', '1e3'] as const)('rejects %j', (input) => {
    expect(duration.safeParse(input).success).toBe(false);
  });

  it('rejects negative and non-finite numbers', () => {
    for (const n of [-1, Number.POSITIVE_INFINITY, Number.NaN]) expect(duration.safeParse(n).success).toBe(false);
  });

  it('a bare number and the same number with `s` mean the same', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), (n) => duration.parse(n) === duration.parse(`${n}s`)));
  });
});

describe('size (nginx style, binary multiples, normalised to bytes)', () => {
  it.each([
    ['512', 512],
    ['64k', 65_536],
    ['64K', 65_536],
    ['1m', 1_048_576],
    ['1g', 1_073_741_824],
    [4096, 4096],
  ] as const)('%j → %d bytes', (input, bytes) => {
    expect(size.parse(input)).toBe(bytes);
  });

  it.each(['1mb', '1.5m', '-1', 'k', -1, 1.5] as const)('rejects %j', (input) => {
    expect(size.safeParse(input).success).toBe(false);
  });
});

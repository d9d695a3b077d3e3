import { describe, expect, it } from 'vitest';
import { make, request, sequence, weighted } from './helpers.ts';

const ok = { failed: false, latencyMs: 1 };

describe('least_conn (nginx weighted least connections)', () => {
  it('breaks ties by smooth weighted round robin (all idle: same sequence as weighted)', () => {
    expect(sequence(make('least_conn', weighted([5, 1, 1])), 7)).toBe('a a b a c a a');
  });

  it('prefers fewer active attempts per unit of weight', () => {
    const b = make('least_conn', weighted([2, 1, 1]));
    // held open: a a b c? by hand: idle tie → SWRR a; then a 1/2 vs b 0 c 0 → tie b,c → SWRR among b,c → b;
    // then a 1/2, b 1/1, c 0 → c; then a 1/2 < b 1 = c 1 → a; then a 2/2 = b = c → tie over all
    const held = Array.from({ length: 4 }, () => b.pick(request(), 0));
    expect(held).toEqual([0, 1, 2, 0]);
    for (const i of held) b.release(i, ok, 0);
  });

  it('with attempts held for equal time, throughput follows weights 5:3:1', () => {
    const b = make('least_conn', weighted([5, 3, 1]));
    const inFlight: number[] = [];
    const c = [0, 0, 0];
    for (let k = 0; k < 10_000; k++) {
      const i = b.pick(request(), k);
      c[i]!++;
      inFlight.push(i);
      if (inFlight.length > 45) b.release(inFlight.shift()!, ok, k);
    }
    for (const [k, w] of [5, 3, 1].entries()) expect(Math.abs(c[k]! / 10_000 - w / 9)).toBeLessThan(0.01);
  });
});

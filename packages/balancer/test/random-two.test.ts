import { describe, expect, it } from 'vitest';
import { make, request, weighted } from './helpers.ts';

const ok = { failed: false, latencyMs: 1 };

/** A scripted random source: returns the given values in order. */
const script =
  (...values: number[]) =>
  () => {
    const v = values.shift();
    if (v === undefined) throw new Error('script exhausted');
    return v;
  };

describe('random_two (nginx random two least_conn)', () => {
  it('draws two servers by weight and takes the one with fewer active per weight (the second on ties)', () => {
    // weights 2,1,1 → ranges a [0,2) b [2,3) c [3,4); x = floor(r * 4)
    const b = make('random_two', weighted([2, 1, 1]), { random: script(0.1, 0.6, 0.8, 0.3, 0.3, 0.9) });
    expect(b.pick(request(), 0)).toBe(1); // a,b both idle → second (b)
    expect(b.pick(request(), 0)).toBe(0); // c,a: c idle (0/1) vs a idle (0/2) → tie → a
    expect(b.pick(request(), 0)).toBe(2); // a again (repeat draw skipped), then c: a 1/2 vs c 0/1 → c
  });

  it('with attempts held for equal time, throughput follows weights 5:3:1', () => {
    const b = make('random_two', weighted([5, 3, 1]));
    const inFlight: number[] = [];
    const c = [0, 0, 0];
    for (let k = 0; k < 10_000; k++) {
      const i = b.pick(request(), k);
      c[i]!++;
      inFlight.push(i);
      if (inFlight.length > 45) b.release(inFlight.shift()!, ok, k);
    }
    for (const [k, w] of [5, 3, 1].entries()) expect(Math.abs(c[k]! / 10_000 - w / 9)).toBeLessThan(0.02);
  });

  it('falls back to weighted round robin when draws keep hitting unusable servers', () => {
    const b = make('random_two', weighted([1, 1, 1]), { random: () => 0 }); // always draws a
    expect(b.pick(request({ tried: new Set([0]) }), 0)).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { make, request, seededRandom, weighted } from './helpers.ts';

describe('ewma (peak EWMA, power of two choices)', () => {
  it('steers traffic away from a slow server', () => {
    const b = make('ewma', weighted([1, 1, 1]), { random: seededRandom(5) });
    const latency = [10, 10, 200];
    const c = [0, 0, 0];
    for (let k = 0; k < 3000; k++) {
      const now = k * 5;
      const i = b.pick(request(), now);
      c[i]!++;
      b.release(i, { failed: false, latencyMs: latency[i]! }, now);
    }
    expect(c[2]! / 3000).toBeLessThan(0.1);
    expect(Math.abs(c[0]! - c[1]!) / 3000).toBeLessThan(0.1);
  });

  it('a latency peak counts at once; later lower samples average it away with the time constant', () => {
    const r = [0, 0.99]; // first draw a, second b
    let n = 0;
    const b = make('ewma', weighted([1, 1]), { random: () => r[n++ % 2]!, ewmaDecayMs: 1000 });
    const feed = (i: number, ms: number, now: number) =>
      b.release(b.pick(request({ tried: new Set([1 - i]) }), now), { failed: false, latencyMs: ms }, now);
    const pickAt = (now: number) => {
      const i = b.pick(request(), now);
      b.release(i, { failed: false, latencyMs: i === 0 ? 10 : 20 }, now);
      return i;
    };
    feed(0, 10, 0);
    feed(1, 20, 0);
    expect(b.pick(request(), 0)).toBe(0);
    b.release(0, { failed: false, latencyMs: 500 }, 0); // a peaks: its estimate is 500 at once
    expect(pickAt(1)).toBe(1);
    // a's estimate after 10 ms samples each second: e^-1 weighting → 190, 76, 34, 19, 13 ms; b stays 20
    for (const t of [1000, 2000]) {
      feed(0, 10, t);
      feed(1, 20, t);
    }
    expect(pickAt(2000)).toBe(1);
    for (const t of [3000, 4000, 5000]) {
      feed(0, 10, t);
      feed(1, 20, t);
    }
    expect(pickAt(5000)).toBe(0);
  });

  it('treats unmeasured servers as the default latency and counts failures as slow', () => {
    const b = make('ewma', weighted([1, 1], { maxFails: 0 }), { random: () => 0, ewmaDefaultLatencyMs: 30 });
    // a fails fast (1 ms) → observed as at least 10 × 30 ms, so b (unmeasured, 30 ms) wins
    b.release(b.pick(request({ tried: new Set([1]) }), 0), { failed: true, latencyMs: 1 }, 0);
    expect(b.pick(request(), 0)).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { make, request, server, weighted } from './helpers.ts';

const ok = { failed: false, latencyMs: 1 };
const bad = { failed: true, latencyMs: 1 };

describe('passive health (nginx max_fails / fail_timeout)', () => {
  it('lets exactly one probe through after fail_timeout, and a successful probe revives the server', () => {
    const b = make('round_robin', weighted([1, 1], { maxFails: 1, failTimeoutMs: 1000 }));
    const a = b.pick(request(), 0);
    b.release(a, bad, 0);
    expect(b.state(0, 1000).failed).toBe(true);
    expect(b.pick(request({ tried: new Set([1]) }), 1000)).toBe(-1); // still inside fail_timeout
    const probe = b.pick(request({ tried: new Set([1]) }), 1001);
    expect(probe).toBe(0);
    // while the probe is in flight the server is unusable again (checked = now)
    expect(b.pick(request({ tried: new Set([1]) }), 1002)).toBe(-1);
    b.release(probe, ok, 1003);
    expect(b.state(0, 1003)).toMatchObject({ fails: 0, failed: false });
  });

  it('a failed probe keeps the server out for another fail_timeout', () => {
    const b = make('round_robin', weighted([1, 1], { maxFails: 1, failTimeoutMs: 1000 }));
    b.release(b.pick(request(), 0), bad, 0);
    const probe = b.pick(request({ tried: new Set([1]) }), 2000);
    b.release(probe, bad, 2000);
    expect(b.state(0, 2500)).toMatchObject({ fails: 2, failed: true });
    expect(b.pick(request({ tried: new Set([1]) }), 3000)).toBe(-1);
    expect(b.pick(request({ tried: new Set([1]) }), 3001)).toBe(0);
  });

  it('counts failures within the window: successes inside it do not reset them', () => {
    const b = make('round_robin', [server('a:80', { maxFails: 3, failTimeoutMs: 10_000 }), server('b:80', { down: true })]);
    for (const [t, outcome] of [
      [0, bad],
      [1, ok],
      [2, bad],
      [3, ok],
      [4, bad],
    ] as const)
      b.release(b.pick(request(), t), outcome, t);
    expect(b.state(0, 5)).toMatchObject({ fails: 3, failed: true });
  });

  it('max_fails=0 disables passive health', () => {
    const b = make('round_robin', weighted([1, 1], { maxFails: 0 }));
    for (let t = 0; t < 5; t++) b.release(b.pick(request({ tried: new Set([1]) }), t), bad, t);
    expect(b.state(0, 5)).toMatchObject({ failed: false, fails: 5 });
    expect(b.pick(request({ tried: new Set([1]) }), 5)).toBe(0);
  });

  it('a single server is never considered unavailable (nginx peers->single)', () => {
    const b = make('weighted', [server('a:80')]);
    for (let t = 0; t < 3; t++) b.release(b.pick(request(), t), bad, t);
    expect(b.state(0, 3)).toMatchObject({ failed: false, fails: 0 });
    expect(b.pick(request(), 3)).toBe(0);
  });

  it('when every server failed, pick returns -1 (nginx: NGX_BUSY, "no live upstreams") until fail_timeout passes', () => {
    const b = make('weighted', weighted([1, 1], { failTimeoutMs: 1000 }));
    b.release(b.pick(request(), 0), bad, 0);
    b.release(b.pick(request(), 0), bad, 0);
    expect(b.pick(request(), 500)).toBe(-1);
    expect(b.state(0, 500).fails).toBe(1); // no reset of fails (older nginx reset them here)
    expect(b.pick(request(), 1001)).toBeGreaterThanOrEqual(0);
  });
});

describe('active health and slow start', () => {
  it('an unhealthy server is skipped; turning healthy ramps its weight linearly over slow_start', () => {
    const servers = [server('a:80', { weight: 10, slowStartMs: 10_000 }), server('b:80', { weight: 10 })];
    const b = make('weighted', servers);
    b.setHealthy(0, false, 0);
    expect(b.state(0, 0).healthy).toBe(false);
    for (let k = 0; k < 4; k++) {
      const i = b.pick(request(), 0);
      expect(i).toBe(1);
      b.release(i, ok, 0);
    }
    b.setHealthy(0, true, 1000);
    expect(b.state(0, 1000).effectiveWeight).toBe(1); // floor: a tenth of the weight
    expect(b.state(0, 6000).effectiveWeight).toBe(5);
    expect(b.state(0, 11_000).effectiveWeight).toBe(10);
    // during the ramp a gets about its share: 2000 picks at t=6000 → 5:10
    const c = [0, 0];
    for (let k = 0; k < 1500; k++) {
      const i = b.pick(request(), 6000);
      c[i]!++;
      b.release(i, ok, 6000);
    }
    expect(c).toEqual([500, 1000]);
  });

  it('a passively failed server ramps up after its probe succeeds', () => {
    const b = make('weighted', weighted([10, 10], { slowStartMs: 1000, failTimeoutMs: 100 }));
    const i = b.pick(request(), 0);
    b.release(i, bad, 0);
    const probe = b.pick(request({ tried: new Set([1 - i]) }), 200);
    b.release(probe, ok, 200);
    // effective_weight fell to 0 (10 - 10/1) and recovered by 1 on the probe; slow start halves it at mid-ramp
    expect(b.state(i, 700).effectiveWeight).toBeCloseTo(1 * 0.5, 9);
    expect(b.state(i, 1200).effectiveWeight).toBe(1);
  });

  it('state() and release() reject an unknown index, release() without a pick', () => {
    const b = make('weighted', weighted([1]));
    expect(() => b.state(3, 0)).toThrow(RangeError);
    expect(() => b.release(0, ok, 0)).toThrow(/without an active pick/);
  });
});

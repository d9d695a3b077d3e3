import { describe, expect, it } from 'vitest';
import { counts, make, request, sequence, weighted } from './helpers.ts';

describe('weighted (nginx smooth weighted round robin)', () => {
  it.each([
    // nginx's own example in ngx_http_upstream_round_robin.c's commit message: 5,1,1
    [[5, 1, 1], 'a a b a c a a a a b a c a a'],
    // by hand: current weights (a,b,c) after each pick: -3,2,1 → 1,-3,2 → -2,-1,3 → 2,1,-3 → -1,3,-2 → 3,-2,-1 → 0,0,0
    [[4, 2, 1], 'a b a c a b a a b a c a b a'],
    [[1, 1, 1], 'a b c a b c a b c a b c a b'],
    [[2, 1], 'a b a a b a a b a a b a a b'],
  ])('weights %j pick %s', (weights, expected) => {
    expect(sequence(make('weighted', weighted(weights)), 14)).toBe(expected);
  });

  it('lowers effective_weight by weight/max_fails on a failure and recovers it by 1 per pick', () => {
    // 4,2,1 with max_fails=2; a fails on the first pick: effective a = 4 - 4/2 = 2.
    // by hand: (cw a,b,c) step 2: a -3+2=-1 (eff→3), b 4, c 2 → b; step 3: a 2 (eff→4), b 1, c 3 → c; then as before.
    const b = make('weighted', weighted([4, 2, 1], { maxFails: 2 }));
    expect(sequence(b, 7, { fail: (step) => step === 0 })).toBe('a b c a b a a');
    expect(b.state(0, 0).effectiveWeight).toBe(4);
  });

  it('takes a server out after max_fails failures within fail_timeout and probes it once the timeout passed', () => {
    // a fails at t=0 and t=3000 (fails=2=max_fails): unusable while now - 3000 <= 10000, so steps
    // 5..14 (t=4000..13000) rotate b,c at 2:1 and a returns at step 15 (t=14000) with effective
    // weight 2; its probe (step 16) succeeds, which resets fails.
    const b = make('weighted', weighted([4, 2, 1], { maxFails: 2, failTimeoutMs: 10_000 }));
    const seq = sequence(b, 18, { now: (s) => s * 1000, fail: (s, i) => i === 0 && (s === 0 || s === 3) });
    expect(seq).toBe('a b c a b b b b c b b c b b c a b a');
    expect(b.state(0, 18_000)).toMatchObject({ fails: 0, failed: false, effectiveWeight: 4 });
  });

  it('splits 10 000 picks 5:3:1 exactly (±1)', () => {
    const c = counts(make('weighted', weighted([5, 3, 1])), 10_000);
    const expected = [5, 3, 1].map((w) => (10_000 * w) / 9);
    for (const [k, n] of c.entries()) expect(Math.abs(n - expected[k]!)).toBeLessThanOrEqual(1);
  });

  it('skips a tried server without disturbing the rotation of the others', () => {
    const b = make('weighted', weighted([5, 1, 1]));
    const first = b.pick(request(), 0);
    const retry = b.pick(request({ tried: new Set([first]) }), 0);
    expect([first, retry]).toEqual([0, 1]);
  });
});

import { describe, expect, it } from 'vitest';
import { make, request, sequence, server, weighted } from './helpers.ts';

describe('round_robin', () => {
  it('rotates ignoring weights', () => {
    expect(sequence(make('round_robin', weighted([5, 1, 1])), 7)).toBe('a b c a b c a');
  });

  it('skips down and failed servers, and resumes them when they recover', () => {
    const servers = [server('a:80'), server('b:80', { down: true }), server('c:80'), server('d:80')];
    const b = make('round_robin', servers);
    // c fails at step 1 (t=1000): unusable until t > 11000
    const seq = sequence(b, 12, { now: (s) => s * 1000, fail: (s, i) => s === 1 && i === 2 });
    expect(seq).toBe('a c d a d a d a d a d a');
    expect(sequence(b, 3, { now: () => 12_000 })).toBe('c d a');
  });

  it('returns -1 when every server was tried', () => {
    const b = make('round_robin', weighted([1, 1]));
    expect(b.pick(request({ tried: new Set([0, 1]) }), 0)).toBe(-1);
  });
});

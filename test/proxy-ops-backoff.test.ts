import { describe, expect, it } from 'vitest';
import { nextStreak, QUICK_CRASH_MS, restartDelay } from '../packages/cli/src/proxy-runtime/restart-backoff.ts';

describe('worker restart backoff', () => {
  it('restarts a one-off crash at once and backs off a crash loop up to 10 s', () => {
    let streak = nextStreak(0, QUICK_CRASH_MS + 1);
    expect([streak, restartDelay(streak)]).toEqual([0, 0]);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      streak = nextStreak(streak, 100);
      delays.push(restartDelay(streak));
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    // A worker that then runs for a while resets the streak.
    expect(nextStreak(streak, QUICK_CRASH_MS)).toBe(0);
  });
});

/** A worker that lived less than this counts as crashing in a loop. */
export const QUICK_CRASH_MS = 5_000;
const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 10_000;

/**
 * The quick-crash streak after a worker exit: a worker that ran for QUICK_CRASH_MS or more resets it
 * (it crashed once, not in a loop), a quicker one extends it.
 */
export function nextStreak(streak: number, livedMs: number): number {
  return livedMs >= QUICK_CRASH_MS ? 0 : streak + 1;
}

/** Delay before forking the replacement: none for a one-off crash, then 250 ms doubling up to 10 s. */
export function restartDelay(streak: number): number {
  return streak === 0 ? 0 : Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (streak - 1));
}

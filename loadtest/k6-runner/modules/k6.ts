/** `k6`: check, group, sleep, fail. Other exports of k6's module refuse when called. */
import type { Tags } from '../metrics.ts';
import { K6Unsupported, refused } from '../refusal.ts';
import { currentTags, emit, vu } from '../vu-context.ts';

type Checker<T> = ((value: T) => unknown) | unknown;

/** Records one `checks` sample per entry (1 pass, 0 fail); true when all passed. An exception ends the iteration, as in k6. */
export function check<T>(value: T, sets: Record<string, Checker<T>>, tags: Tags = {}): boolean {
  let all = true;
  for (const [name, fn] of Object.entries(sets)) {
    const ok = Boolean(typeof fn === 'function' ? fn(value) : fn);
    emit('checks', ok ? 1 : 0, currentTags({ ...tags, check: name }));
    all &&= ok;
  }
  return all;
}

export function group<T>(name: string, fn: () => T): T {
  if (name.includes('::')) throw new Error(`group name '${name}' contains '::', which k6 reserves for group paths`);
  const outer = vu.groupPath;
  vu.groupPath = `${outer}::${name}`;
  const start = performance.now();
  try {
    const result = fn();
    if (result instanceof Promise) throw new K6Unsupported('group() with an async function');
    return result;
  } finally {
    emit('group_duration', performance.now() - start, currentTags());
    vu.groupPath = outer;
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks this VU (its thread) for `seconds`; other VUs run on. */
export function sleep(seconds: number): void {
  if (!(seconds > 0)) return;
  Atomics.wait(sleepCell, 0, 0, seconds * 1000);
}

/** Ends the iteration with an error, as k6's fail(). */
export function fail(message?: string): never {
  throw new Error(message ?? 'fail() called');
}

export const randomSeed = refused('k6.randomSeed()');

export default { check, group, sleep, fail, randomSeed };

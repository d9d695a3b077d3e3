import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PROXY_V8_FLAGS } from '../src/proxy-runtime/v8-flags.ts';

/**
 * What `--memory-saver-mode` and `--min-semi-space-size=4` in PROXY_V8_FLAGS are there for, checked on the node
 * that runs the proxy (a V8 upgrade that changed their meaning fails here): old-generation objects that die in
 * batches, so that mark-compacts run by themselves and empty pages, with V8's own GC log (`--trace-gc-nvp`).
 */
const SCRIPT = `
let keep = [];
for (let round = 0; round < 40; round++) {
  const batch = [];
  for (let i = 0; i < 60000; i++) batch.push({ a: i, b: 'x' + i, c: [i] });
  keep.push(batch);
  if (keep.length > 4) keep = keep.slice(-1);
}`;

interface Gc {
  kind: string;
  reduceMemory: number;
  pooledPages: number;
  newSpaceCapacity: number;
}

function gcLog(flags: readonly string[]): Gc[] {
  const r = spawnSync(process.execPath, [...flags, '--trace-gc-nvp', '-e', SCRIPT], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout
    .split('\n')
    .filter((l) => / gc=\w+ /.test(l))
    .map((l) => {
      const field = (name: string): string => new RegExp(` ${name}=(\\S+)`).exec(l)?.[1] ?? '';
      return {
        kind: field('gc'),
        reduceMemory: Number(field('reduce_memory')),
        pooledPages: Number(field('pool_local_chunks')),
        newSpaceCapacity: Number(field('new_space_capacity')),
      };
    });
}

describe("the proxy's V8 flags and V8's page pool", () => {
  it('every mark-compact reduces memory and empties the pool, and the young generation stays at 4 MiB', () => {
    const gcs = gcLog(PROXY_V8_FLAGS);
    const markCompacts = gcs.filter((g) => g.kind === 'mc');
    expect(markCompacts.length).toBeGreaterThan(2);
    for (const mc of markCompacts) expect(mc).toMatchObject({ reduceMemory: 1, pooledPages: 0 });
    expect(new Set(gcs.map((g) => g.newSpaceCapacity))).toEqual(new Set([4 * 1024 * 1024]));
  });

  it('without memory saver mode the emptied pages stay pooled (what the flag is for)', () => {
    const markCompacts = gcLog([...PROXY_V8_FLAGS, '--no-memory-saver-mode']).filter((g) => g.kind === 'mc');
    expect(markCompacts.length).toBeGreaterThan(2);
    expect(markCompacts.every((mc) => mc.reduceMemory === 0)).toBe(true);
    // 256 KiB pages kept committed: over a hundred here.
    expect(Math.max(...markCompacts.map((mc) => mc.pooledPages))).toBeGreaterThan(20);
  });
});

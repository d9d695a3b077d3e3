import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALGORITHMS, BALANCERS, type Balancer, createBalancer, type ServerSpec } from '../src/index.ts';
import { make, request, seededRandom, server } from './helpers.ts';

const ok = { failed: false, latencyMs: 5 };

describe('registry', () => {
  it('has exactly the ALGORITHMS as keys', () => {
    expect(Object.keys(BALANCERS).sort()).toEqual([...ALGORITHMS].sort());
  });

  it('rejects an unknown algorithm and impossible servers with TG_CONFIG_INVALID', () => {
    const code = expect.objectContaining({ code: 'TG_CONFIG_INVALID' });
    expect(() => createBalancer('fastest' as never, [server('a:80')], { random: Math.random })).toThrow(code);
    expect(() => make('weighted', [server('a:80', { weight: 0 })])).toThrow(code);
    expect(() => make('weighted', [server('a:80'), server('a:80')])).toThrow(code);
    expect(() => make('weighted', [server('a:80', { maxFails: -1 })])).toThrow(code);
  });
});

/** What the outside can tell about whether server i may be picked now. */
function usable(b: Balancer, i: number, tried: ReadonlySet<number>, now: number): boolean {
  const s = b.servers[i]!;
  const st = b.state(i, now);
  return !s.down && st.healthy && !st.failed && !tried.has(i) && (s.maxConns === 0 || st.active < s.maxConns);
}

const serverArb = fc.record({
  weight: fc.integer({ min: 1, max: 5 }),
  down: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
  backup: fc.boolean(),
  maxConns: fc.integer({ min: 0, max: 3 }),
  maxFails: fc.integer({ min: 0, max: 2 }),
  slowStartMs: fc.constantFrom(0, 500),
});
const opArb = fc.oneof(
  fc.record({ kind: fc.constant('pick' as const), tried: fc.array(fc.nat(7), { maxLength: 3 }), key: fc.string({ maxLength: 6 }) }),
  fc.record({ kind: fc.constant('release' as const), failed: fc.boolean(), latencyMs: fc.integer({ min: 1, max: 300 }) }),
  fc.record({ kind: fc.constant('health' as const), index: fc.nat(7), healthy: fc.boolean() }),
);

describe.each(ALGORITHMS)('shared contract: %s', (algorithm) => {
  it('returns -1 when every server is down, and uses backups only when no primary is usable', () => {
    const all = [server('a:80', { down: true }), server('b:80', { down: true })];
    expect(make(algorithm, all).pick(request(), 0)).toBe(-1);
    const withBackup = [server('a:80'), server('b:80'), server('c:80', { backup: true })];
    const b = make(algorithm, withBackup);
    for (let k = 0; k < 20; k++) {
      const i = b.pick(request({ clientAddress: `10.0.${k}.1`, hashKey: `k${k}` }), 0);
      expect(i).toBeLessThan(2);
      b.release(i, ok, 0);
    }
    expect(b.pick(request({ tried: new Set([0, 1]) }), 0)).toBe(2);
  });

  it('property: never a down, tried, unhealthy, failed or full server; backups only as a last resort; -1 only when nothing is usable; active counts balance', () => {
    fc.assert(
      fc.property(
        fc.array(serverArb, { minLength: 1, maxLength: 8 }),
        fc.array(opArb, { maxLength: 60 }),
        fc.integer(),
        (specs, ops, seed) => {
          const servers: ServerSpec[] = specs.map((s, k) => server(`10.0.0.${k + 1}:80`, { ...s, failTimeoutMs: 1000 }));
          const b = createBalancer(algorithm, servers, { random: seededRandom(seed), consistent: seed % 2 === 0 });
          const held: number[] = [];
          const active = new Array<number>(servers.length).fill(0);
          let now = 0;
          for (const op of ops) {
            now += 97;
            if (op.kind === 'health') {
              if (op.index < servers.length) b.setHealthy(op.index, op.healthy, now);
            } else if (op.kind === 'release') {
              const i = held.shift();
              if (i === undefined) continue;
              b.release(i, op, now);
              active[i]!--;
            } else {
              const tried = new Set(op.tried.filter((t) => t < servers.length));
              const can = servers.map((_, i) => usable(b, i, tried, now));
              const i = b.pick(request({ tried, hashKey: op.key, clientAddress: `192.0.2.${op.key.length}` }), now);
              if (i < 0) {
                expect(can.some(Boolean)).toBe(false);
                continue;
              }
              expect(can[i]).toBe(true);
              if (servers[i]!.backup) expect(servers.some((s, p) => !s.backup && can[p])).toBe(false);
              held.push(i);
              active[i]!++;
            }
            for (let i = 0; i < servers.length; i++) expect(b.state(i, now).active).toBe(active[i]);
          }
          for (const i of held) b.release(i, ok, now);
          for (let i = 0; i < servers.length; i++) expect(b.state(i, now).active).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });
});

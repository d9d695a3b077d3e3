import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConsistentHashRing, splitHostPort } from '../src/consistent-hash-ring.ts';
import type { ServerSpec } from '../src/index.ts';
import { make, request, server } from './helpers.ts';

const ok = { failed: false, latencyMs: 1 };

function pickKey(b: ReturnType<typeof make>, hashKey: string, tried: ReadonlySet<number> = new Set()): number {
  const i = b.pick(request({ hashKey, tried }), 0);
  if (i >= 0) b.release(i, ok, 0);
  return i;
}

const servers = (n: number, extra: Partial<ServerSpec> = {}) => Array.from({ length: n }, (_, k) => server(`10.0.0.${k + 1}:8080`, extra));
const keys = Array.from({ length: 10_000 }, (_, k) => `/item/${k}`);

describe('hash (modulo, nginx ngx_http_upstream_get_hash_peer)', () => {
  it('maps a key to ((crc32(key) >> 16) & 0x7fff) % total_weight, walked by weight', () => {
    const b = make('hash', [server('a:80', { weight: 2 }), server('b:80', { weight: 3 })]);
    for (const key of ['/', '/index.html', 'user-42', 'ключ']) {
      const slot = ((crc32(key) >>> 16) & 0x7fff) % 5;
      expect(pickKey(b, key)).toBe(slot < 2 ? 0 : 1);
    }
  });

  it('rehashes with the decimal try count prefixed to the key, accumulating', () => {
    // the spec restated: hash += (crc32(REHASH KEY) >> 16) & 0x7fff, REHASH omitted the first time
    const expectedAfter = (key: string, total: number, skip: number) => {
      let acc = 0;
      for (let r = 0; r <= 20; r++) {
        acc += (crc32(r === 0 ? key : `${r}${key}`) >>> 16) & 0x7fff;
        if (acc % total !== skip) return acc % total;
      }
      return -1;
    };
    const b = make('hash', servers(7));
    for (const key of ['/cart', '/user/1', '/user/2', 'session=abc']) {
      const first = pickKey(b, key);
      expect(first).toBe(((crc32(key) >>> 16) & 0x7fff) % 7);
      expect(pickKey(b, key, new Set([first]))).toBe(expectedAfter(key, 7, first));
    }
  });

  it('an empty key falls back to weighted round robin', () => {
    const b = make('hash', servers(3));
    expect([pickKey(b, ''), pickKey(b, ''), pickKey(b, '')]).toEqual([0, 1, 2]);
  });

  it('remaps most keys when a server is removed (modulo is not consistent)', () => {
    const five = make('hash', servers(5));
    const four = make('hash', servers(4));
    const moved = keys.filter((k) => pickKey(five, k) !== pickKey(four, k)).length;
    expect(moved / keys.length).toBeGreaterThan(0.6);
  });
});

describe('hash consistent (nginx ketama ring)', () => {
  it('splits server names as nginx does', () => {
    expect(splitHostPort('10.0.0.1:8080')).toEqual({ host: '10.0.0.1', port: '8080' });
    expect(splitHostPort('[::1]:80')).toEqual({ host: '[::1]', port: '80' });
    expect(splitHostPort('backend')).toEqual({ host: 'backend', port: '' });
    expect(splitHostPort('unix:/run/app.sock')).toEqual({ host: '/run/app.sock', port: '' });
  });

  it('places 160 points per weight at crc32(host \\0 port prev_hash_le)', () => {
    const ring = ConsistentHashRing.build([server('a:80', { weight: 2 })], [0]);
    expect(ring.size).toBe(320);
    const first = crc32(Buffer.concat([Buffer.from('a\0' + '80'), Buffer.alloc(4)]));
    const prev = Buffer.alloc(4);
    prev.writeUInt32LE(first);
    const second = crc32(Buffer.concat([Buffer.from('a\x0080'), prev]));
    expect(ring.hashes).toContain(first);
    expect(ring.hashes).toContain(second);
    expect([...ring.hashes]).toEqual([...ring.hashes].sort((x, y) => x - y));
  });

  it('maps a key to the owner of the first point >= crc32(key)', () => {
    const ss = servers(3);
    const ring = ConsistentHashRing.build(ss, [0, 1, 2]);
    const b = make('hash', ss, { consistent: true });
    for (const key of ['/a', '/b', '/c', '/d']) {
      const h = crc32(key);
      const at = [...ring.hashes].findIndex((p) => p >= h);
      expect(pickKey(b, key)).toBe(ring.owners[Math.max(0, at)]);
    }
  });

  it('removing one of 5 servers moves about 1/5 of keys and none from a surviving server', () => {
    const five = make('hash', servers(5), { consistent: true });
    const four = make('hash', servers(5).slice(0, 4), { consistent: true });
    const down = make(
      'hash',
      servers(5).map((s, k) => (k === 4 ? { ...s, down: true } : s)),
      { consistent: true },
    );
    let moved = 0;
    for (const k of keys) {
      const before = pickKey(five, k);
      const after = pickKey(four, k);
      expect(pickKey(down, k)).toBe(after);
      if (before !== 4) expect(after).toBe(before);
      else moved++;
    }
    expect(moved / keys.length).toBeGreaterThan(0.15);
    expect(moved / keys.length).toBeLessThan(0.25);
  });

  it('adding a server moves keys only onto the new server', () => {
    const four = make('hash', servers(4), { consistent: true });
    const five = make('hash', servers(5), { consistent: true });
    let gained = 0;
    for (const k of keys) {
      const after = pickKey(five, k);
      if (after === 4) gained++;
      else expect(after).toBe(pickKey(four, k));
    }
    expect(gained / keys.length).toBeGreaterThan(0.15);
  });

  const ringCase = fc.record({
    n: fc.integer({ min: 2, max: 8 }),
    weights: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 8, maxLength: 8 }),
    keys: fc.array(fc.string({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 50 }),
  });
  const build = (n: number, weights: number[], skip = -1) =>
    make(
      'hash',
      servers(n)
        .map((s, k) => ({ ...s, weight: weights[k]! }))
        .filter((_, k) => k !== skip),
      { consistent: true },
    );

  it('property: deterministic across instances', () => {
    fc.assert(
      fc.property(ringCase, ({ n, weights, keys }) => {
        const a = build(n, weights);
        const b = build(n, weights);
        for (const k of keys) expect(pickKey(a, k)).toBe(pickKey(b, k));
      }),
      { numRuns: 40 },
    );
  });

  it('property: every key maps to a usable server while one is', () => {
    fc.assert(
      fc.property(ringCase, fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), ({ n, weights, keys }, downs) => {
        if (downs.slice(0, n).every(Boolean)) downs[0] = false;
        const ss = servers(n).map((s, k) => ({ ...s, weight: weights[k]!, down: downs[k]! }));
        const b = make('hash', ss, { consistent: true });
        for (const k of keys) {
          const i = pickKey(b, k);
          expect(i).toBeGreaterThanOrEqual(0);
          expect(ss[i]!.down).toBe(false);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('property: removing a server remaps only its own keys', () => {
    fc.assert(
      fc.property(ringCase, fc.nat(), ({ n, weights, keys }, r) => {
        const removed = r % n;
        const full = build(n, weights);
        const less = build(n, weights, removed);
        for (const k of keys) {
          const before = pickKey(full, k);
          if (before === removed) continue;
          const after = pickKey(less, k);
          // indices after the removed one shift down by one in the smaller list
          expect(after + (after >= removed ? 1 : 0)).toBe(before);
        }
      }),
      { numRuns: 40 },
    );
  });
});

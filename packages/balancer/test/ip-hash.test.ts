import { describe, expect, it } from 'vitest';
import { parseIpInto } from '../src/ip-address.ts';
import { make, request, seededRandom, server, weighted } from './helpers.ts';

function bytesOf(addr: string): number[] | undefined {
  const out = new Uint8Array(16);
  const n = parseIpInto(addr, out);
  return n === 0 ? undefined : [...out.subarray(0, n)];
}

function pickFor(b: ReturnType<typeof make>, clientAddress: string): number {
  const i = b.pick(request({ clientAddress }), 0);
  b.release(i, { failed: false, latencyMs: 1 }, 0);
  return i;
}

const randomV4 = (r: () => number) => Array.from({ length: 4 }, () => Math.floor(r() * 256)).join('.');

describe('ip address parsing', () => {
  it.each([
    ['192.0.2.1', [192, 0, 2, 1]],
    ['::ffff:10.1.2.3', [10, 1, 2, 3]],
    ['2001:db8::1', [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['::1', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['fe80::1%eth0', [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['1:2:3:4:5:6:7:8', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
    ['64:ff9b::192.0.2.33', [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 33]],
  ])('%s', (addr, bytes) => expect(bytesOf(addr)).toEqual(bytes));

  it.each(['', 'localhost', '1.2.3', '1.2.3.256', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1', '12345::', 'unix:/tmp/s'])('rejects %j', (addr) => {
    expect(bytesOf(addr)).toBeUndefined();
  });
});

describe('ip_hash', () => {
  it('maps a fixed address exactly as nginx computes it', () => {
    // by hand: 89 → (89*113+192)%6271=3978 → (3978*113+0)%6271=4273 → (4273*113+2)%6271=6255;
    // 6255 % 7 = 4 → walk 4,2,1: 4-4=0 < 2 → b. With three equal servers 6255 % 3 = 0 → a.
    expect(pickFor(make('ip_hash', weighted([4, 2, 1])), '192.0.2.1')).toBe(1);
    expect(pickFor(make('ip_hash', weighted([1, 1, 1])), '192.0.2.1')).toBe(0);
  });

  it('keeps every address of a /24 on the same server, unless the whole address is hashed', () => {
    const part = make('ip_hash', weighted([1, 1, 1, 1, 1]));
    const whole = make('ip_hash', weighted([1, 1, 1, 1, 1]), { ipHashWholeAddress: true });
    const onPart = new Set<number>();
    const onWhole = new Set<number>();
    for (let last = 0; last < 256; last++) {
      onPart.add(pickFor(part, `198.51.100.${last}`));
      onWhole.add(pickFor(whole, `198.51.100.${last}`));
    }
    expect(onPart.size).toBe(1);
    expect(onWhole.size).toBe(5);
  });

  it('hashes IPv6 clients by all 16 bytes', () => {
    const b = make('ip_hash', weighted([1, 1, 1]));
    const seen = new Set<number>();
    for (let k = 0; k < 64; k++) seen.add(pickFor(b, `2001:db8::${k.toString(16)}`));
    expect(seen.size).toBe(3);
    expect(pickFor(b, '2001:db8::7')).toBe(pickFor(b, '2001:0db8:0:0:0:0:0:7'));
  });

  it("moves only a failed server's clients, and they return when it recovers", () => {
    const servers = weighted([1, 1, 1, 1], { failTimeoutMs: 1000 });
    const b = make('ip_hash', servers);
    const r = seededRandom(7);
    const clients = Array.from({ length: 500 }, () => randomV4(r));
    const before = clients.map((c) => pickFor(b, c));
    const i = b.pick(request({ clientAddress: clients[before.indexOf(2)]! }), 0);
    b.release(i, { failed: true, latencyMs: 1 }, 0);
    const during = clients.map((c) => pickFor(b, c));
    clients.forEach((_, k) => {
      if (before[k] === 2) expect(during[k]).not.toBe(2);
      else expect(during[k]).toBe(before[k]);
    });
    expect(before.filter((s) => s === 2).length).toBeGreaterThan(50);
  });

  it('walks by weight: shares follow weights over many /24s', () => {
    const b = make('ip_hash', weighted([3, 1]));
    const r = seededRandom(3);
    const c = [0, 0];
    for (let k = 0; k < 4000; k++) c[pickFor(b, randomV4(r))]!++;
    expect(c[0]! / 4000).toBeGreaterThan(0.7);
    expect(c[0]! / 4000).toBeLessThan(0.8);
  });

  it('falls back to weighted round robin after 20 unusable rehashes', () => {
    // one usable server out of many down ones: some addresses never hash onto it in 21 tries
    const servers = Array.from({ length: 40 }, (_, k) => server(`s${k}:80`, { down: k !== 39 }));
    const b = make('ip_hash', servers);
    const r = seededRandom(11);
    for (let k = 0; k < 50; k++) expect(pickFor(b, randomV4(r))).toBe(39);
  });
});

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type GuestRun, runInGuest } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROUNDTRIP = new URL('./guest/ipvs-roundtrip.ts', import.meta.url).pathname;
const BATCH = new URL('./guest/ipvs-batch.ts', import.meta.url).pathname;

// One boot (TCG costs ~10 s each) for both tests: the round-trip script does the writes and its own comparisons,
// then the real ipvsadm prints the table it left behind for the assertions below; the batch script runs in a
// network namespace of its own.
const script = `set -uo pipefail
node ${ROUNDTRIP} > roundtrip.out 2> roundtrip.err
echo $? > roundtrip.rc
ipvsadm -Ln > ln.txt 2>&1
ipvsadm -Ln --thresholds > thresholds.txt 2>&1
ip netns add batch
ip netns exec batch node ${BATCH} > batch.out 2> batch.err
echo $? > batch.rc
`;

const squash = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter(Boolean);

describe('netlink IPVS driver against the real kernel (QEMU guest)', () => {
  let run: GuestRun;
  const read = (f: string) => readFile(join(run.scratchDir, f), 'utf8');
  beforeAll(async () => {
    run = await runInGuest({ script, timeoutMs: 240_000 });
  }, 260_000);
  afterAll(async () => {
    await run?.[Symbol.asyncDispose]();
  });

  it('writes every kind of service, reads it back through netlink and ipvsadm, and maps kernel errnos', async () => {
    expect(run.exitCode, `guest script failed\nstderr:\n${run.stderr}\nconsole:\n${run.console}`).toBe(0);
    const out = await read('roundtrip.out');
    const summary = JSON.parse(out.trim().split('\n').at(-1) as string) as { ok: boolean; checks: number; failures: unknown[] };
    expect(summary.failures, `round trip failures\n${await read('roundtrip.err')}`).toEqual([]);
    expect(summary.ok).toBe(true);
    expect(await read('roundtrip.rc')).toBe('0\n');
    expect(summary.checks).toBeGreaterThan(60);

    const save = out.slice(out.indexOf('--- ipvsadm -S -n ---'), out.indexOf('--- end ---'));
    expect(squash(save)).toEqual(
      expect.arrayContaining([
        '-A -t 10.99.0.100:443 -s mh -b mh-fallback,mh-port',
        '-a -t 10.99.0.100:443 -r 10.99.0.11:443 -i -w 10 --tun-type gue --tun-port 6080 --tun-remcsum',
        '-a -t 10.99.0.100:443 -r 10.99.0.12:443 -i -w 10 --tun-type gre --tun-csum',
        '-A -f 7 -s wrr',
        '-a -f 7 -r 10.99.0.13:0 -i -w 5 --tun-type ipip',
        '-A -f 8 -6 -s rr',
        '-A -t [2001:db8::100]:443 -s rr -p 300 -M 64',
        '-A -t 10.99.0.101:80 -s wlc -p 600 -M 255.255.255.0',
        '-A -u 10.99.0.100:53 -s rr -o',
        '-A --sctp-service 10.99.0.100:5000 -s rr',
      ]),
    );

    // The table the ipvsadm driver rebuilt with `ipvsadm -R`, as the real ipvsadm lists it.
    const ln = squash(await read('ln.txt'));
    expect(ln[0]).toMatch(/^IP Virtual Server version 1\.2\.1 \(size=\d+\)$/);
    expect(ln).toEqual(
      expect.arrayContaining([
        'TCP 10.99.0.100:80 wrr',
        '-> 10.99.0.11:80 Route 3 0 0',
        '-> 10.99.0.12:80 Route 1 0 0',
        'UDP 10.99.0.100:53 rr ops',
        '-> 10.99.0.11:5353 Masq 1 0 0',
        'FWM 7 wrr',
        '-> 10.99.0.13:0 Tunnel 5 0 0',
        'TCP 10.99.0.100:443 mh (mh-fallback,mh-port)',
        'TCP 10.99.0.101:80 wlc persistent 600 mask 255.255.255.0',
        'TCP 10.99.0.102:80 sh (sh-fallback,sh-port)',
        '-> 10.99.0.11:8080 Masq 2 0 0',
        'SCTP 10.99.0.100:5000 rr',
        'TCP [2001:db8::100]:443 rr persistent 300 mask 64',
        '-> [2001:db8::11]:443 Route 1 0 0',
        'FWM 8 IPv6 rr',
      ]),
    );
    expect(squash(await read('thresholds.txt'))).toContain('-> 10.99.0.12:80 100 50 0 0');
  });

  it('applies a batch in one sendto() with an answer per op, failures in the middle included, and loses no ACK of a big one', async () => {
    expect(run.exitCode, `guest script failed\nstderr:\n${run.stderr}\nconsole:\n${run.console}`).toBe(0);
    expect(await read('batch.rc'), await read('batch.err')).toBe('0\n');
    const out = JSON.parse(await read('batch.out')) as {
      mixed: { results: { ok: boolean; code?: string; message?: string }[]; sendCalls: number; ln: string };
      ipvsadm: { results: { ok: boolean; reason?: string }[]; ln: string };
      big: { ops: number; failureCount: number; failures: unknown[]; sendCalls: number; ln: string };
    };

    // Each op's own ACK: the three failures in the middle, and the ops after each applied.
    expect(out.mixed.sendCalls).toBe(1);
    expect(out.mixed.results).toEqual([
      { ok: true },
      { ok: true },
      {
        ok: false,
        code: 'TG_IPVS_NO_SERVICE',
        message: 'add destination 10.97.1.2:80 to TCP 10.97.0.2:80: no such service (ESRCH)',
      },
      { ok: true },
      { ok: false, code: 'TG_IPVS_EXISTS', message: 'add service TCP 10.97.0.1:80: it already exists (EEXIST)' },
      {
        ok: false,
        code: 'TG_IPVS_RANGE',
        message: expect.stringMatching(/^add destination 10\.97\.1\.4:80 to TCP 10\.97\.0\.1:80: value out of range/),
      },
      { ok: true },
    ]);
    // What the real ipvsadm lists: exactly the ops reported applied.
    const mixedLn = squash(out.mixed.ln);
    expect(mixedLn.filter((l) => l.startsWith('TCP'))).toEqual(['TCP 10.97.0.1:80 wrr']);
    expect(mixedLn.filter((l) => l.startsWith('->') && !l.includes('RemoteAddress'))).toEqual([
      '-> 10.97.1.1:80 Route 1 0 0',
      '-> 10.97.1.3:80 Route 1 0 0',
      '-> 10.97.1.5:80 Route 1 0 0',
    ]);
    // The ipvsadm driver's batch (one run per op) answers alike and leaves the same table.
    expect(out.ipvsadm.results.map((r) => r.ok)).toEqual(out.mixed.results.map((r) => r.ok));
    expect(out.ipvsadm.results[2]).toMatchObject({ reason: 'no-service' });
    expect(out.ipvsadm.results[4]).toMatchObject({ reason: 'exists' });
    expect(squash(out.ipvsadm.ln)).toEqual(mixedLn);

    // 3,300 ACKs are ~12 times what net.core.rmem_default holds: the socket's larger buffer and the datagram
    // limit keep every one (a lost ACK would be a TG_IPVS_KERNEL failure), in datagrams of 256 requests.
    expect(out.big.failures).toEqual([]);
    expect(out.big.failureCount).toBe(0);
    expect(out.big.ops).toBe(3300);
    expect(out.big.sendCalls).toBe(Math.ceil(3300 / 256));
    const bigLn = squash(out.big.ln);
    expect(bigLn.filter((l) => l.startsWith('TCP'))).toHaveLength(300);
    expect(bigLn.filter((l) => /^-> 10\.95\./.test(l))).toHaveLength(3000);
  });
});

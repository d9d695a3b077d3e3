import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runInGuest } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';

const ROUNDTRIP = new URL('./guest/ipvs-roundtrip.ts', import.meta.url).pathname;

// One boot (TCG costs ~10 s each): the round-trip script does the writes and its own comparisons,
// then the real ipvsadm prints the table it left behind for the assertions below.
const script = `set -uo pipefail
node ${ROUNDTRIP} > roundtrip.out 2> roundtrip.err
echo $? > roundtrip.rc
ipvsadm -Ln > ln.txt 2>&1
ipvsadm -Ln --thresholds > thresholds.txt 2>&1
`;

const squash = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter(Boolean);

describe('netlink IPVS driver against the real kernel (QEMU guest)', () => {
  it('writes every kind of service, reads it back through netlink and ipvsadm, and maps kernel errnos', async () => {
    await using run = await runInGuest({ script, timeoutMs: 180_000 });
    const read = (f: string) => readFile(join(run.scratchDir, f), 'utf8');
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
  }, 200_000);
});

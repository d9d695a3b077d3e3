import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GUEST_NET, guestRealServerIp, runInGuest, topologyPrelude } from '../src/index.ts';

const guestFile = (name: string) => readFileSync(new URL(`./guest/${name}`, import.meta.url), 'utf8');
const PAD_BYTES = 64 * 1024;
const REQUESTS = 6;
const KOFFI = fileURLToPath(new URL('../../../node_modules/koffi', import.meta.url));

// One boot for everything: TCG makes each boot cost ~10 s, so the scenario batches its checks and
// leaves its evidence in the scratch share for the assertions below.
const script = `set -euo pipefail
${topologyPrelude()}
tg_topology_up 2
tg_director_vip
for i in 1 2; do
  tg_realserver_dr rs$i
  ip netns exec rs$i node http-echo.cjs rs$i ${PAD_BYTES} > rs$i.log 2>&1 &
done
tg_wait_file rs1.ready && tg_wait_file rs2.ready
ip netns exec director ipvsadm -A -t $TG_VIP:80 -s rr
for i in 1 2; do ip netns exec director ipvsadm -a -t $TG_VIP:80 -r "$(tg_rs_ip $i)":80 -g; done
director_tx() { ip netns exec director cat /sys/class/net/eth0/statistics/tx_bytes; }
tx_before=$(director_tx)
ip netns exec client timeout 60 node sequential-client.cjs "http://$TG_VIP/" ${REQUESTS} > answers.json
echo $(( $(director_tx) - tx_before )) > director-tx.txt
ip netns exec director ipvsadm -Ln > ipvsadm.txt
node -e '
  const koffi = require("${KOFFI}");
  const libc = koffi.load("libc.so.6");
  const getpid = libc.func("int getpid()");
  const getuid = libc.func("unsigned int getuid()");
  console.log(JSON.stringify({ pid: getpid(), nodePid: process.pid, uid: getuid() }));
' > koffi.json
kill %1 %2
`;

interface Answer {
  readonly status: number;
  readonly name: string;
  readonly peer: string;
  readonly local: string;
  readonly bytes: number;
}

describe('QEMU guest with real IPVS', () => {
  it('balances a client over two DR real servers with ipvsadm, keeps the client address, and runs koffi', async () => {
    await using run = await runInGuest({
      script,
      timeoutMs: 150_000,
      files: { 'http-echo.cjs': guestFile('http-echo.cjs'), 'sequential-client.cjs': guestFile('sequential-client.cjs') },
    });
    console.info(`guest: boot ${run.bootMs} ms, total ${run.totalMs} ms`);
    expect(run.exitCode, `script failed\nstderr:\n${run.stderr}\nconsole:\n${run.console}`).toBe(0);
    const read = (f: string) => readFile(join(run.scratchDir, f), 'utf8');

    const answers = JSON.parse(await read('answers.json')) as Answer[];
    expect(answers).toHaveLength(REQUESTS);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    // rr: consecutive connections go to alternating real servers, three each.
    const names = answers.map((a) => a.name);
    expect(names.filter((n) => n === 'rs1')).toHaveLength(REQUESTS / 2);
    expect(names.slice(1).every((n, i) => n !== names[i])).toBe(true);
    // DR: the real server sees the client's own address and answers from the VIP.
    expect(new Set(answers.map((a) => a.peer))).toEqual(new Set([GUEST_NET.client]));
    expect(new Set(answers.map((a) => a.local))).toEqual(new Set([GUEST_NET.vip]));
    // DR: responses bypass the director, which only forwarded requests and ACKs.
    const delivered = answers.reduce((sum, a) => sum + a.bytes, 0);
    expect(delivered).toBeGreaterThan(REQUESTS * PAD_BYTES);
    expect(Number(await read('director-tx.txt'))).toBeLessThan(delivered / 4);

    const ipvsadm = await read('ipvsadm.txt');
    expect(ipvsadm).toMatch(new RegExp(`TCP\\s+${GUEST_NET.vip}:80 rr`));
    for (const i of [1, 2]) expect(ipvsadm).toMatch(new RegExp(`->\\s+${guestRealServerIp(i)}:80\\s+Route\\s+1`));

    const koffi = JSON.parse(await read('koffi.json')) as { pid: number; nodePid: number; uid: number };
    expect(koffi.pid).toBe(koffi.nodePid);
    expect(koffi.uid).toBe(0);
  }, 180_000);
});

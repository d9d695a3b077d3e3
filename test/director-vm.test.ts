import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GUEST_NET, runInGuest, topologyPrelude } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';

// Real-kernel tests of the director: a QEMU guest (Debian kernel, real IPVS) with client, director and
// real-server network namespaces on a bridge. Each boot batches its scenarios (TCG boots cost ~10 s) and leaves
// evidence (ipvsadm -S -n dumps, client answers, command output) in the scratch share for the assertions.

const guestFile = (name: string) => readFileSync(new URL(`./guest/${name}`, import.meta.url), 'utf8');
const NODE = join(import.meta.dirname, '../node_modules/.bin/node');
const TIERGATE = `${NODE} ${join(import.meta.dirname, '..', 'packages', 'cli', 'bin', 'tiergate.js')}`;
const VIP = GUEST_NET.vip;
const rs = (i: number) => `${GUEST_NET.prefix}.${GUEST_NET.rsBase + i}`;
const PAD = 32 * 1024;

const cfg1 = `version: 1
directors:
  - name: d1
    interface: eth0
    vips: [${VIP}]
    reconcile_interval: 500ms
    admin: { address: 127.0.0.1, port: 9902 }
virtual_services:
  - name: web
    address: ${VIP}
    port: 80
    scheduler: rr
    real_servers: [{ address: ${rs(1)} }, { address: ${rs(2)} }, { address: ${rs(3)} }]
    health_check: { type: tcp, interval: 300ms, timeout: 300ms, fall: 2, rise: 1, jitter: 0 }
  - name: weighted
    address: ${VIP}
    port: 81
    scheduler: wrr
    real_servers: [{ address: ${rs(1)}, weight: 3 }, { address: ${rs(2)}, weight: 1 }]
  - name: hashed
    address: ${VIP}
    port: 82
    scheduler: sh
    scheduler_flags: [sh-fallback]
    real_servers: [{ address: ${rs(1)} }, { address: ${rs(2)} }, { address: ${rs(3)} }]
  - name: drain
    address: ${VIP}
    port: 83
    scheduler: rr
    persistence: { timeout: 120s, netmask: 255.255.255.0 }
    drain_timeout: 10m
    real_servers: [{ address: ${rs(3)}, weight: 2 }]
`;
// Re-weight rs1 on :81; on :83 add rs1 and remove rs3 (which holds an established connection).
const cfg2 = cfg1
  .replace(`{ address: ${rs(1)}, weight: 3 }`, `{ address: ${rs(1)}, weight: 5 }`)
  .replace(`real_servers: [{ address: ${rs(3)}, weight: 2 }]`, `real_servers: [{ address: ${rs(1)}, weight: 2 }]`);
const bad = cfg1.replace('scheduler: wrr', 'scheduler: nope');

const prelude = `set -euo pipefail
${topologyPrelude()}
TG="${TIERGATE}"
NODE="${NODE}"
D() { ip netns exec director "$@"; }
save() { D ipvsadm -S -n | sort; }
poll() { local i; for ((i = 0; i < 150; i++)); do if eval "$1"; then return 0; fi; sleep 0.1; done; echo "poll timed out: $1" >&2; return 1; }
tg_topology_up 3

# 6) a foreign service exists before tiergate runs
D ipvsadm -A -t 10.99.0.200:80 -s lc
D ipvsadm -a -t 10.99.0.200:80 -r ${rs(3)}:80 -g -w 7
save > foreign-before.txt

declare -A ECHO
for i in 1 2 3; do
  ip netns exec rs$i $NODE director-echo.cjs rs$i 80,81,82,83 ${PAD} > rs$i.log 2>&1 &
  ECHO[$i]=$!
  ip netns exec rs$i $TG realserver up -c cfg1.yaml > rs$i-up.txt &
  UP[$i]=$!
done
wait \${UP[1]} \${UP[2]} \${UP[3]}
for i in 1 2 3; do tg_wait_file rs$i.ready; done

`;

const applyScript = `${prelude}
ip netns exec rs1 $TG realserver up -c cfg1.yaml > rs1-up-again.txt
for i in 1 2 3; do ip -n rs$i -j addr show dev lo > rs$i-lo.json; ip netns exec rs$i cat /proc/sys/net/ipv4/conf/all/arp_ignore /proc/sys/net/ipv4/conf/all/arp_announce /proc/sys/net/ipv4/conf/eth0/arp_ignore /proc/sys/net/ipv4/conf/eth0/arp_announce > rs$i-arp.txt; done
# dry run and an invalid config change nothing
D $TG director apply -c cfg1.yaml --dry-run > dry-run.txt
save > after-dry-run.txt

# 1) apply
D $TG director apply -c cfg1.yaml > apply1.txt
save > applied1.txt
D ipvsadm -Ln > list1.txt
set +e; D $TG director apply -c bad.yaml > bad.out 2> bad.err; echo $? > bad.code; set -e
save > after-bad.txt

# 2) + 3) scheduling and DR evidence
tx() { D cat /sys/class/net/eth0/statistics/tx_bytes; }
tx0=$(tx)
ip netns exec client $NODE director-client.cjs seq http://$TG_VIP:80/ 6 rr.json
echo $(( $(tx) - tx0 )) > rr-tx.txt
ip netns exec client $NODE director-client.cjs seq http://$TG_VIP:81/ 8 wrr.json
ip netns exec client $NODE director-client.cjs seq http://$TG_VIP:82/ 5 sh.json

# 5) add / re-weight / remove with drain, with an established connection on the removed server
ip netns exec client $NODE director-client.cjs hold http://$TG_VIP:83/ &
HOLD=$!
tg_wait_file hold1.json
D $TG director apply -c cfg2.yaml > apply2.txt
D ipvsadm -Ln > list2.txt
touch hold.go
tg_wait_file hold.json
D $TG director apply -c cfg2.yaml > apply3.txt
touch hold.close; wait $HOLD
sleep 1
D $TG director apply -c cfg2.yaml > apply4.txt
save > final.txt
kill \${ECHO[1]} \${ECHO[2]} \${ECHO[3]} || true
`;

const daemonScript = `${prelude}
D $TG director apply -c cfg1.yaml > apply1.txt
# daemon
D $TG director run -c cfg1.yaml > run1.log 2>&1 &
DAEMON=$!
poll "D $NODE -e 'fetch(\\"http://127.0.0.1:9902/status\\").then(r=>r.json()).then(s=>process.exit(s.cycles>=2?0:1),()=>process.exit(1))'"
# 4) health: stop rs2's server, its weight on :80 goes to 0; restart, back to 1
kill \${ECHO[2]}
t0=$(date +%s%N)
poll "D ipvsadm -Ln -t $TG_VIP:80 | grep -Eq '${rs(2)}:80 +Route +0 '"
echo $(( ($(date +%s%N) - t0) / 1000000 )) > down-ms.txt
D ipvsadm -Ln > list-down.txt
D $TG director status -c cfg1.yaml > status-down.txt
rm -f rs2.ready
ip netns exec rs2 $NODE director-echo.cjs rs2 80,81,82,83 ${PAD} > rs2b.log 2>&1 &
tg_wait_file rs2.ready
t0=$(date +%s%N)
poll "D ipvsadm -Ln -t $TG_VIP:80 | grep -Eq '${rs(2)}:80 +Route +1 '"
echo $(( ($(date +%s%N) - t0) / 1000000 )) > up-ms.txt
D $NODE -e 'fetch("http://127.0.0.1:9902/metrics").then(r=>r.text()).then(t=>process.stdout.write(t))' > metrics.txt

# 7) a restart of the daemon leaves the table as it is
save > before-restart.txt
kill -TERM $DAEMON; wait $DAEMON || true
save > after-stop.txt
D $TG director run -c cfg1.yaml > run2.log 2>&1 &
DAEMON=$!
poll "D $NODE -e 'fetch(\\"http://127.0.0.1:9902/status\\").then(r=>r.json()).then(s=>process.exit(s.cycles>=3?0:1),()=>process.exit(1))'"
save > after-restart.txt
kill -TERM $DAEMON; wait $DAEMON || true

save > final.txt
kill \${ECHO[1]} \${ECHO[3]} || true
`;

interface Answer {
  readonly name: string;
  readonly peer: string;
  readonly bytes: number;
  readonly localPort: number;
}

describe('director against real IPVS (QEMU guest)', () => {
  it('DR via `tiergate director apply`: exact table, dry run, invalid config, scheduling, DR evidence, drain, foreign service', async () => {
    await using run = await runInGuest({
      script: applyScript,
      timeoutMs: 240_000,
      files: {
        'cfg1.yaml': cfg1,
        'cfg2.yaml': cfg2,
        'bad.yaml': bad,
        'director-echo.cjs': guestFile('director-echo.cjs'),
        'director-client.cjs': guestFile('director-client.cjs'),
      },
    });
    console.info(`guest: boot ${run.bootMs} ms, total ${run.totalMs} ms`);
    expect(run.exitCode, `script failed\nstderr:\n${run.stderr}\nstdout:\n${run.stdout}`).toBe(0);
    const read = (f: string) => readFile(join(run.scratchDir, f), 'utf8');
    const json = async <T>(f: string) => JSON.parse(await read(f)) as T;

    // real servers: VIP /32 on lo and the ARP sysctls, idempotently
    for (const i of [1, 2, 3]) {
      const lo = await json<{ addr_info: { local: string; prefixlen: number }[] }[]>(`rs${i}-lo.json`);
      expect(lo[0]?.addr_info.filter((a) => a.local === VIP)).toEqual([expect.objectContaining({ prefixlen: 32 })]);
      expect((await read(`rs${i}-arp.txt`)).split('\n').filter(Boolean)).toEqual(['1', '2', '1', '2']);
    }

    // dry run: ipvsadm commands, nothing changed
    const foreign = await read('foreign-before.txt');
    expect(await read('dry-run.txt')).toContain(`ipvsadm -A -t ${VIP}:80 -s rr`);
    expect(await read('after-dry-run.txt')).toBe(foreign);

    // 1) exactly the configured services, schedulers, persistence, methods and weights (plus the foreign one)
    const applied = await read('applied1.txt');
    expect(applied.split('\n').filter(Boolean).sort()).toEqual(
      [
        ...foreign.split('\n').filter(Boolean),
        `-A -t ${VIP}:80 -s rr`,
        ...[1, 2, 3].map((i) => `-a -t ${VIP}:80 -r ${rs(i)}:80 -g -w 1`),
        `-A -t ${VIP}:81 -s wrr`,
        `-a -t ${VIP}:81 -r ${rs(1)}:81 -g -w 3`,
        `-a -t ${VIP}:81 -r ${rs(2)}:81 -g -w 1`,
        `-A -t ${VIP}:82 -s sh -b sh-fallback`,
        ...[1, 2, 3].map((i) => `-a -t ${VIP}:82 -r ${rs(i)}:82 -g -w 1`),
        `-A -t ${VIP}:83 -s rr -p 120 -M 255.255.255.0`,
        `-a -t ${VIP}:83 -r ${rs(3)}:83 -g -w 2`,
      ].sort(),
    );
    // 8) an invalid config is rejected with its path, and the table is unchanged
    expect(await read('bad.code')).toBe('1\n');
    expect(await read('bad.err')).toContain('virtual_services[1].scheduler');
    expect(await read('after-bad.txt')).toBe(applied);

    // 2) rr alternates over the three, wrr 3:1, sh keeps the client on one server; 3) client address kept, DR bypass
    const rr = await json<Answer[]>('rr.json');
    expect(
      rr
        .map((a) => a.name)
        .slice(0, 3)
        .sort(),
    ).toEqual(['rs1', 'rs2', 'rs3']);
    expect(rr.map((a) => a.name).slice(3)).toEqual(rr.map((a) => a.name).slice(0, 3));
    const wrr = (await json<Answer[]>('wrr.json')).map((a) => a.name);
    expect(wrr.filter((n) => n === 'rs1')).toHaveLength(6);
    expect(wrr.filter((n) => n === 'rs2')).toHaveLength(2);
    expect(new Set((await json<Answer[]>('sh.json')).map((a) => a.name)).size).toBe(1);
    expect(new Set(rr.map((a) => a.peer))).toEqual(new Set([GUEST_NET.client]));
    const delivered = rr.reduce((s, a) => s + a.bytes, 0);
    expect(Number(await read('rr-tx.txt'))).toBeLessThan(delivered / 4);

    // 5) only the needed ops; the held connection on the removed server survives at weight 0, then it is deleted
    expect((await read('apply2.txt')).split('\n').filter(Boolean)).toEqual([
      `add-destination TCP ${VIP}:83 -> ${rs(1)}:83 route w=2`,
      `update-destination TCP ${VIP}:81 -> ${rs(1)}:81 route w=5`,
      `update-destination TCP ${VIP}:83 -> ${rs(3)}:83 route w=0`,
      'applied 3 ops',
    ]);
    expect(await read('list2.txt')).toMatch(new RegExp(`${rs(3)}:83\\s+Route\\s+0\\s+1\\s`));
    const hold = await json<{ first: Answer; second: Answer }>('hold.json');
    expect(hold.first.name).toBe('rs3');
    expect(hold.second).toMatchObject({ name: 'rs3', localPort: hold.first.localPort });
    expect(await read('apply3.txt')).toBe('applied 0 ops\n');
    expect((await read('apply4.txt')).split('\n').filter(Boolean)).toEqual([
      `delete-destination TCP ${VIP}:83 -> ${rs(3)}:83`,
      'applied 1 op',
    ]);

    // 6) the foreign service is untouched after all of it
    const final = await read('final.txt');
    for (const line of foreign.split('\n').filter(Boolean)) expect(final).toContain(line);
    expect(final.split('\n').filter((l) => l.includes('10.99.0.200'))).toEqual(foreign.split('\n').filter(Boolean));
  }, 300_000);

  it('DR via `tiergate director run`: health quiesce and return, status, metrics, restart keeps the table, foreign service', async () => {
    await using run = await runInGuest({
      script: daemonScript,
      timeoutMs: 240_000,
      files: {
        'cfg1.yaml': cfg1,
        'cfg2.yaml': cfg2,
        'bad.yaml': bad,
        'director-echo.cjs': guestFile('director-echo.cjs'),
        'director-client.cjs': guestFile('director-client.cjs'),
      },
    });
    console.info(`guest: boot ${run.bootMs} ms, total ${run.totalMs} ms`);
    expect(run.exitCode, `script failed\nstderr:\n${run.stderr}\nstdout:\n${run.stdout}`).toBe(0);
    const read = (f: string) => readFile(join(run.scratchDir, f), 'utf8');
    const json = async <T>(f: string) => JSON.parse(await read(f)) as T;

    const foreign = await read('foreign-before.txt');
    // 4) health: rs2 quiesced (weight 0) while down, back to 1 after it returns; status shows it; metrics count it
    expect(await read('list-down.txt')).toMatch(new RegExp(`${rs(2)}:80\\s+Route\\s+0`));
    expect(await read('status-down.txt')).toMatch(new RegExp(`-> ${rs(2)}:80\\s+Route\\s+0\\s+\\d+\\s+\\d+\\s+down`));
    const metrics = await read('metrics.txt');
    expect(metrics).toContain(`tiergate_director_health_transitions_total{service="tcp/${VIP}:80",state="down"} 1`);
    expect(metrics).toContain(`tiergate_director_health_transitions_total{service="tcp/${VIP}:80",state="up"} 1`);
    console.info(`health: down seen after ${await read('down-ms.txt')} ms, up after ${await read('up-ms.txt')} ms`);

    // 7) stopping and restarting the daemon leaves the table intact
    const beforeRestart = await read('before-restart.txt');
    expect(await read('after-stop.txt')).toBe(beforeRestart);
    expect(await read('after-restart.txt')).toBe(beforeRestart);

    // 6) the foreign service is untouched after all of it
    const final = await read('final.txt');
    for (const line of foreign.split('\n').filter(Boolean)) expect(final).toContain(line);
    expect(final.split('\n').filter((l) => l.includes('10.99.0.200'))).toEqual(foreign.split('\n').filter(Boolean));
  }, 300_000);
});

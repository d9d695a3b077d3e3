import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultVmCacheDir, GUEST_NET, type GuestRun, runInGuest, topologyPrelude } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Real-kernel tests of the director: ONE QEMU guest (Debian kernel, real IPVS) with client, director and
// real-server network namespaces on a bridge, running every scenario in turn (DR by `director apply`, DR by
// `director run`, then NAT and TUN) and leaving evidence (ipvsadm -S -n dumps, client answers, command output)
// in the scratch share. Each scenario ends by touching its marker file, so each test below fails on its own
// scenario's evidence. Under TCG, Node's startup dominates (a tiergate command takes seconds to tens of seconds,
// most of it loading modules), so the script keeps processes few: one client process per batch of requests,
// bash's /dev/tcp for the admin API, and a compile cache warmed on the host (below) for every guest command.

const guestFile = (name: string) => readFileSync(new URL(`./guest/${name}`, import.meta.url), 'utf8');
const NODE_BIN = join(import.meta.dirname, '../node_modules/.bin/node');
const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'bin', 'tiergate.js');
/**
 * QEMU's `-cpu max` offers PKU (memory protection keys), which the hosts here lack; V8 then guards its JIT memory
 * with them and once aborted in the guest ("Check failed: it->second.Size() > offset" in
 * ThreadIsolation::StartOfJitAllocationAt, from a WebAssembly tier-up). Node runs without them in the guest.
 */
const NODE_FLAGS = ['--no-memory-protection-keys'];
const NODE = [NODE_BIN, ...NODE_FLAGS].join(' ');
const TIERGATE = `${NODE} ${CLI}`;
const VIP = GUEST_NET.vip;
const rs = (i: number) => `${GUEST_NET.prefix}.${GUEST_NET.rsBase + i}`;
const PAD = 32 * 1024;

const cfg1 = `version: 1
directors:
  - name: d1
    interface: eth0
    vips: [${VIP}]
    reconcile_interval: 500ms
    resync_interval: 2s
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
// A reload of the running daemon (SIGHUP): rs2 on :81 re-weighted.
const cfg3 = cfg2.replace(`{ address: ${rs(2)}, weight: 1 }`, `{ address: ${rs(2)}, weight: 4 }`);

/** NAT and TUN: a second director entry (its own state file), so the DR services above are foreign to it. */
const NAT_VIP = `${GUEST_NET.prefix}.102`;
/** The VIP of the TUN services: on tunl0 of the real servers (a DR VIP goes on lo). */
const TUN_VIP = `${GUEST_NET.prefix}.101`;
/** The NAT back-end network behind the director (LVS-NAT recipe): the director is .1, nat real server i is .(10 + i). */
const BACK = { prefix: '10.99.1', director: '10.99.1.1' } as const;
const natRs = (i: number) => `${BACK.prefix}.${10 + i}`;
const GUE_PORT = 6080;
const cfgNatTun = `version: 1
directors:
  - name: d2
    interface: eth0
    vips: [${NAT_VIP}, ${TUN_VIP}]
virtual_services:
  - name: nat
    address: ${NAT_VIP}
    port: 80
    scheduler: rr
    forwarding: nat
    real_servers: [{ address: ${natRs(1)}, port: 8080 }, { address: ${natRs(2)}, port: 8080 }]
  - name: tun-ipip
    address: ${TUN_VIP}
    port: 84
    scheduler: rr
    forwarding: tun
    real_servers: [{ address: ${rs(1)} }, { address: ${rs(2)} }]
  - name: tun-gue
    address: ${TUN_VIP}
    port: 85
    scheduler: rr
    forwarding: tun
    tunnel: { type: gue, port: ${GUE_PORT} }
    real_servers: [{ address: ${rs(2)} }]
  - name: tun-gre
    address: ${TUN_VIP}
    port: 86
    scheduler: rr
    forwarding: tun
    tunnel: { type: gre }
    real_servers: [{ address: ${rs(1)} }]
`;

/** Where the host warms Node's compile cache for the guest (its own /tmp starts empty at every boot). */
const COMPILE_CACHE = join(defaultVmCacheDir(), 'node-compile-cache');

const prelude = `set -euo pipefail
${topologyPrelude()}
TG="${TIERGATE}"
NODE="${NODE}"
D() { ip netns exec director "$@"; }
save() { D ipvsadm -S -n | sort; }
poll() { local i; for ((i = 0; i < 300; i++)); do if eval "$1"; then return 0; fi; sleep 0.1; done; echo "poll timed out: $1" >&2; return 1; }
step() { echo "$(date +%s%N) $*" >> steps.txt; }
# http_get PORT PATH: the body of GET http://127.0.0.1:PORT/PATH through bash's /dev/tcp (no Node startup).
http_get() {
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' "$2" >&3
  local r; r=$(cat <&3); exec 3<&-
  printf '%s' "\${r#*$'\\r\\n\\r\\n'}"
}
export -f http_get
cycles_at_least() { D bash -c 'http_get 9902 /status' 2> /dev/null | grep -Eq "\\"cycles\\":([$1-9]|[1-9][0-9]+)[,}]"; }
# A copy of the host-warmed compile cache: the guest's root is read-only, Node writes to its cache.
mkdir -p /tmp/ncc && cp -r '${COMPILE_CACHE}/.' /tmp/ncc/ && export NODE_COMPILE_CACHE=/tmp/ncc
step topology
tg_topology_up 3

# 6) a foreign service exists before tiergate runs
D ipvsadm -A -t 10.99.0.200:80 -s lc
D ipvsadm -a -t 10.99.0.200:80 -r ${rs(3)}:80 -g -w 7
save > foreign-before.txt

step servers
declare -A ECHO
for i in 1 2 3; do
  ip netns exec rs$i $NODE director-echo.cjs rs$i 80,81,82,83,84,85,86 ${PAD} > rs$i.log 2>&1 &
  ECHO[$i]=$!
  ip netns exec rs$i $TG realserver up -c cfg1.yaml > rs$i-up.txt &
  UP[$i]=$!
done
wait \${UP[1]} \${UP[2]} \${UP[3]}
for i in 1 2 3; do tg_wait_file rs$i.ready; done
`;

const applyScenario = `
step dr-apply
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

# 2) + 3) scheduling and DR evidence: the director's eth0 sends almost nothing of the answers
tx() { D cat /sys/class/net/eth0/statistics/tx_bytes; }
tx0=$(tx)
ip netns exec client $NODE director-client.cjs many dr.json http://$TG_VIP:80/ 6 http://$TG_VIP:81/ 8 http://$TG_VIP:82/ 5
echo $(( $(tx) - tx0 )) > dr-tx.txt

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
touch dr-apply.done
`;

const daemonScenario = `
step dr-daemon
# the daemon takes over the table that the apply scenario left (cfg2); live.yaml is what a SIGHUP re-reads
# (not through D: a backgrounded shell function is a subshell, and $! would be the subshell, not the daemon that
# SIGHUP/SIGTERM are for)
cp cfg2.yaml live.yaml
ip netns exec director $TG director run -c live.yaml > run1.log 2>&1 &
DAEMON=$!
poll "cycles_at_least 2"
# 4) health: stop rs2's server, its weight on :80 goes to 0; restart, back to 1
kill \${ECHO[2]}
t0=$(date +%s%N)
poll "D ipvsadm -Ln -t $TG_VIP:80 | grep -Eq '${rs(2)}:80 +Route +0 '"
echo $(( ($(date +%s%N) - t0) / 1000000 )) > down-ms.txt
D ipvsadm -Ln > list-down.txt
D $TG director status -c cfg2.yaml > status-down.txt
rm -f rs2.ready
ip netns exec rs2 $NODE director-echo.cjs rs2 80,81,82,83,84,85,86 ${PAD} > rs2b.log 2>&1 &
ECHO[2]=$!
tg_wait_file rs2.ready
t0=$(date +%s%N)
poll "D ipvsadm -Ln -t $TG_VIP:80 | grep -Eq '${rs(2)}:80 +Route +1 '"
echo $(( ($(date +%s%N) - t0) / 1000000 )) > up-ms.txt
D bash -c 'http_get 9902 /metrics' > metrics.txt
D ipvsadm -Ln --stats --exact -t $TG_VIP:80 > stats80.txt

# 9) drift: changes made behind the daemon's back on owned services are repaired at the next resync (2 s)
# (the daemon is stopped while the table drifts, so the evidence cannot race with a resync)
save > before-drift.txt
kill -STOP $DAEMON
D ipvsadm -e -t $TG_VIP:81 -r ${rs(1)}:81 -g -w 9
D ipvsadm -d -t $TG_VIP:82 -r ${rs(3)}:82
save > drifted.txt
kill -CONT $DAEMON
t0=$(date +%s%N)
poll "save | cmp -s - before-drift.txt"
echo $(( ($(date +%s%N) - t0) / 1000000 )) > drift-repair-ms.txt

# 10) a reload (SIGHUP) applies what changed in the file; an invalid file is refused and changes nothing
cp cfg3.yaml live.yaml; kill -HUP $DAEMON
poll "D ipvsadm -Ln -t $TG_VIP:81 | grep -Eq '${rs(2)}:81 +Route +4 '"
save > reloaded.txt
cp bad.yaml live.yaml; kill -HUP $DAEMON
poll "grep -q 'config reload rejected' run1.log"
save > after-bad-reload.txt
cp cfg2.yaml live.yaml; kill -HUP $DAEMON
poll "save | cmp -s - before-drift.txt"

# 7) a restart of the daemon leaves the table as it is
save > before-restart.txt
kill -TERM $DAEMON; wait $DAEMON || true
save > after-stop.txt
ip netns exec director $TG director run -c cfg2.yaml > run2.log 2>&1 &
DAEMON=$!
poll "cycles_at_least 3"
save > after-restart.txt
kill -TERM $DAEMON; wait $DAEMON || true
save > daemon-final.txt
touch dr-daemon.done
`;

const natTunScenario = `
step nat-tun
# The NAT back end: bridge br1 with the director's eth1 and nat1/nat2, whose default route is the director.
ip link add br1 type bridge; ip link set br1 up
ip link add v-d-back type veth peer name eth1 netns director
ip link set v-d-back master br1 up
ip -n director addr add ${BACK.director}/24 dev eth1; ip -n director link set eth1 up
for i in 1 2; do
  ip netns add nat$i
  ip link add v-nat$i type veth peer name eth0 netns nat$i
  ip link set v-nat$i master br1 up
  ip -n nat$i link set lo up
  ip -n nat$i addr add ${BACK.prefix}.$((10 + i))/24 dev eth0; ip -n nat$i link set eth0 up
  ip -n nat$i route add default via ${BACK.director}
done
D cat /proc/sys/net/ipv4/ip_forward > ip-forward-before.txt
for i in 1 2; do ip netns exec nat$i $NODE director-echo.cjs nat$i 8080 ${PAD} > nat$i.log 2>&1 & NAT[$i]=$!; done
for i in 1 2; do ip netns exec rs$i $TG realserver up -c nat-tun.yaml > rs$i-up-tun.txt & UP[$i]=$!; done
D $TG director apply -c nat-tun.yaml > apply-nat-tun.txt
wait \${UP[1]} \${UP[2]}
for n in nat1 nat2; do tg_wait_file $n.ready; done
save > nat-tun-saved.txt
D ipvsadm -Ln > nat-tun-list.txt
D cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/vs/conntrack > nat-tun-sysctl.txt
ip netns exec rs2 ip fou show > rs2-fou.txt
ip -n rs1 -j link show dev gre0 > rs1-gre0.json
ip netns exec rs1 cat /proc/sys/net/ipv4/conf/gre0/rp_filter > rs1-gre0-rp.txt
for i in 1 2; do
  ip -n rs$i -j addr show dev tunl0 > rs$i-tunl0.json
  ip netns exec rs$i cat /proc/sys/net/ipv4/conf/tunl0/rp_filter /proc/sys/net/ipv4/conf/all/rp_filter > rs$i-rp.txt
done
ip netns exec client $NODE director-client.cjs many nat-tun.json http://${NAT_VIP}:80/ 4 http://${TUN_VIP}:84/ 4 http://${TUN_VIP}:85/ 2 http://${TUN_VIP}:86/ 2
# Kernels before 6.2 fold the per-CPU counters into what ipvsadm reads only in the 2 s estimator timer.
sleep 2.5
D ipvsadm -Ln --stats --exact > nat-tun-stats.txt
# realserver down restores everything up changed on rs2 (its DR VIP on lo too)
ip netns exec rs2 $TG realserver down -c nat-tun.yaml > rs2-down.txt
ip -n rs2 -j addr show > rs2-after-down.json
ip netns exec rs2 ip fou show > rs2-fou-after-down.txt
touch nat-tun.done
step end
kill \${ECHO[1]} \${ECHO[2]} \${ECHO[3]} \${NAT[1]} \${NAT[2]} || true
`;

interface Answer {
  readonly name?: string;
  readonly port?: number;
  readonly peer?: string;
  readonly local?: string;
  readonly bytes: number;
  readonly localPort?: number;
  readonly error?: string;
}
interface Link {
  readonly ifname: string;
  readonly flags: string[];
  readonly addr_info: { local: string; prefixlen: number }[];
}

/** Warms tiergate's compile cache on the host: the guest gets a copy, so its commands skip compiling (~half their startup). */
function warmCompileCache(): void {
  const env = { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE };
  // `warm-cache` loads every command's modules (help alone loads only the option definitions).
  for (const args of [['warm-cache']]) {
    // The same V8 flags as in the guest: they are part of the cache's key.
    execFileSync(NODE_BIN, [...NODE_FLAGS, CLI, ...args], { env, stdio: 'ignore' });
  }
}

describe('director against real IPVS (QEMU guest, one boot)', () => {
  let run: GuestRun | undefined;
  const read = (f: string) => readFile(join(run?.scratchDir ?? '/nonexistent', f), 'utf8');
  const json = async <T>(f: string) => JSON.parse(await read(f)) as T;
  /** Fails with the script's output unless the scenario touched its marker. */
  const scenarioRan = (marker: string) => {
    expect(run, 'the guest did not run').toBeDefined();
    const r = run as GuestRun;
    expect(
      existsSync(join(r.scratchDir, marker)),
      `scenario did not finish (exit ${r.exitCode})\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`,
    ).toBe(true);
  };

  beforeAll(async () => {
    warmCompileCache();
    run = await runInGuest({
      script: `${prelude}${applyScenario}${daemonScenario}${natTunScenario}`,
      timeoutMs: 840_000,
      files: {
        'cfg1.yaml': cfg1,
        'cfg2.yaml': cfg2,
        'bad.yaml': bad,
        'cfg3.yaml': cfg3,
        'nat-tun.yaml': cfgNatTun,
        'director-echo.cjs': guestFile('director-echo.cjs'),
        'director-client.cjs': guestFile('director-client.cjs'),
      },
    });
    const steps = (await read('steps.txt').catch(() => '')).split('\n').filter(Boolean);
    const t0 = Number(steps[0]?.split(' ')[0]) / 1e6;
    const timeline = steps.map((l) => `+${Math.round(Number(l.split(' ')[0]) / 1e6 - t0)} ms ${l.split(' ')[1]}`).join(', ');
    console.info(`guest: boot ${run.bootMs} ms, total ${run.totalMs} ms, exit ${run.exitCode}; ${timeline}`);
  }, 900_000);

  afterAll(async () => {
    await run?.[Symbol.asyncDispose]();
  });

  it('DR via `tiergate director apply`: exact table, dry run, invalid config, scheduling, DR evidence, drain, foreign service', async () => {
    scenarioRan('dr-apply.done');

    // real servers: VIP /32 on lo and the ARP sysctls, idempotently
    for (const i of [1, 2, 3]) {
      const lo = await json<Link[]>(`rs${i}-lo.json`);
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
    const dr = await json<Record<string, Answer[]>>('dr.json');
    const rr = dr[`http://${VIP}:80/`] ?? [];
    expect(
      rr
        .map((a) => a.name)
        .slice(0, 3)
        .sort(),
    ).toEqual(['rs1', 'rs2', 'rs3']);
    expect(rr.map((a) => a.name).slice(3)).toEqual(rr.map((a) => a.name).slice(0, 3));
    const wrr = (dr[`http://${VIP}:81/`] ?? []).map((a) => a.name);
    expect(wrr.filter((n) => n === 'rs1')).toHaveLength(6);
    expect(wrr.filter((n) => n === 'rs2')).toHaveLength(2);
    const sh = dr[`http://${VIP}:82/`] ?? [];
    expect(sh).toHaveLength(5);
    expect(new Set(sh.map((a) => a.name)).size).toBe(1);
    const all = Object.values(dr).flat();
    expect(new Set(all.map((a) => a.peer))).toEqual(new Set([GUEST_NET.client]));
    const delivered = all.reduce((s, a) => s + a.bytes, 0);
    expect(Number(await read('dr-tx.txt'))).toBeLessThan(delivered / 4);

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
    expect(final.split('\n').filter((l) => l.includes('10.99.0.200'))).toEqual(foreign.split('\n').filter(Boolean));
  });

  it('DR via `tiergate director run`: health quiesce and return, status, metrics, restart keeps the table, foreign service', async () => {
    scenarioRan('dr-daemon.done');
    const foreign = await read('foreign-before.txt');
    // 4) health: rs2 quiesced (weight 0) while down, back to 1 after it returns; status shows it; metrics count it
    expect(await read('list-down.txt')).toMatch(new RegExp(`${rs(2)}:80\\s+Route\\s+0`));
    expect(await read('status-down.txt')).toMatch(new RegExp(`-> ${rs(2)}:80\\s+Route\\s+0\\s+\\d+\\s+\\d+\\s+down`));
    const metrics = await read('metrics.txt');
    const web = `service="web",vip="${VIP}",port="80",protocol="tcp"`;
    expect(metrics).toContain(`tiergate_director_health_transitions_total{${web},server="${rs(2)}:80",state="down"} 1`);
    expect(metrics).toContain(`tiergate_director_health_transitions_total{${web},server="${rs(2)}:80",state="up"} 1`);
    expect(metrics).toContain(`tiergate_director_realserver_healthy{${web},server="${rs(2)}:80"} 1`);
    expect(metrics).toContain(`tiergate_director_realserver_weight{${web},server="${rs(2)}:80"} 1`);
    // The counters are the kernel's own: what `ipvsadm -Ln --stats --exact` shows right after (no traffic between).
    const stats80 = (await read('stats80.txt')).split('\n');
    const svcLine =
      stats80
        .find((l) => l.startsWith('TCP'))
        ?.trim()
        .split(/\s+/) ?? [];
    expect(metrics).toContain(`tiergate_director_service_connections_total{${web}} ${svcLine[2]}`);
    expect(metrics).toContain(`tiergate_director_service_incoming_bytes_total{${web}} ${svcLine[5]}`);
    const rs1Line =
      stats80
        .find((l) => l.includes(`-> ${rs(1)}:80`))
        ?.trim()
        .split(/\s+/) ?? [];
    expect(metrics).toContain(`tiergate_director_realserver_connections_total{${web},server="${rs(1)}:80"} ${rs1Line[2]}`);
    console.info(`health: down seen after ${(await read('down-ms.txt')).trim()} ms, up after ${(await read('up-ms.txt')).trim()} ms`);

    // 9) the drift (a weight set by `ipvsadm -e`, a destination deleted by `ipvsadm -d`) happened, and the next
    //    resync put the table back exactly as it was
    const beforeDrift = await read('before-drift.txt');
    const drifted = (await read('drifted.txt')).split('\n');
    expect(drifted).toContain(`-a -t ${VIP}:81 -r ${rs(1)}:81 -g -w 9`);
    expect(drifted).not.toContain(`-a -t ${VIP}:82 -r ${rs(3)}:82 -g -w 1`);
    expect(beforeDrift.split('\n')).toContain(`-a -t ${VIP}:82 -r ${rs(3)}:82 -g -w 1`);
    console.info(`drift repaired after ${(await read('drift-repair-ms.txt')).trim()} ms (resync_interval 2s)`);

    // 10) SIGHUP: the one changed weight applied and nothing else; an invalid file changed nothing
    const reloaded = (await read('reloaded.txt')).split('\n');
    expect(reloaded.filter((l) => !beforeDrift.split('\n').includes(l))).toEqual([`-a -t ${VIP}:81 -r ${rs(2)}:81 -g -w 4`]);
    expect(await read('after-bad-reload.txt')).toBe(await read('reloaded.txt'));
    const rejected = (await read('run1.log')).split('\n').find((l) => l.includes('config reload rejected'));
    expect(rejected).toContain('virtual_services[1].scheduler');

    // 7) stopping and restarting the daemon leaves the table intact; the daemon found nothing to change in
    //    the table `director apply` left
    const beforeRestart = await read('before-restart.txt');
    expect(beforeRestart).toBe(await read('final.txt'));
    expect(await read('after-stop.txt')).toBe(beforeRestart);
    expect(await read('after-restart.txt')).toBe(beforeRestart);

    // 6) the foreign service is untouched after all of it
    const final = await read('daemon-final.txt');
    expect(final.split('\n').filter((l) => l.includes('10.99.0.200'))).toEqual(foreign.split('\n').filter(Boolean));
  });

  it('NAT with port mapping and TUN (ipip, GUE, GRE): `director apply` and `realserver up|down`', async () => {
    scenarioRan('nat-tun.done');
    // the table, as ipvsadm reads it back: Masq with the port mapped, Tunnel with ipip and GUE (port, no checksum);
    // the DR services of the other director entry are still there, untouched
    const saved = (await read('nat-tun-saved.txt')).split('\n').filter(Boolean);
    expect(saved.filter((l) => l.includes(NAT_VIP) || l.includes(TUN_VIP))).toEqual([
      `-A -t ${TUN_VIP}:84 -s rr`,
      `-A -t ${TUN_VIP}:85 -s rr`,
      `-A -t ${TUN_VIP}:86 -s rr`,
      `-A -t ${NAT_VIP}:80 -s rr`,
      `-a -t ${TUN_VIP}:84 -r ${rs(1)}:84 -i -w 1 --tun-type ipip`,
      `-a -t ${TUN_VIP}:84 -r ${rs(2)}:84 -i -w 1 --tun-type ipip`,
      `-a -t ${TUN_VIP}:85 -r ${rs(2)}:85 -i -w 1 --tun-type gue --tun-port ${GUE_PORT} --tun-nocsum`,
      `-a -t ${TUN_VIP}:86 -r ${rs(1)}:86 -i -w 1 --tun-type gre --tun-nocsum`,
      `-a -t ${NAT_VIP}:80 -r ${natRs(1)}:8080 -m -w 1`,
      `-a -t ${NAT_VIP}:80 -r ${natRs(2)}:8080 -m -w 1`,
    ]);
    expect(saved.filter((l) => !l.includes(NAT_VIP) && !l.includes(TUN_VIP))).toEqual(
      (await read('daemon-final.txt')).split('\n').filter(Boolean),
    );
    const list = await read('nat-tun-list.txt');
    for (const i of [1, 2]) expect(list).toMatch(new RegExp(`-> ${natRs(i)}:8080\\s+Masq\\s+1\\s`));
    for (const i of [1, 2]) expect(list).toMatch(new RegExp(`-> ${rs(i)}:84\\s+Tunnel\\s+1\\s`));

    // director host setup for NAT turned forwarding and IPVS conntrack on (DR alone had left forwarding off)
    expect(await read('ip-forward-before.txt')).toBe('0\n');
    expect((await read('nat-tun-sysctl.txt')).split('\n').filter(Boolean)).toEqual(['1', '1']);
    expect(await read('apply-nat-tun.txt')).toContain('host: sysctl net.ipv4.ip_forward=1 (was 0)');

    // TUN real servers: the VIP on tunl0 (up), rp_filter relaxed; the GUE receive port where a GUE service needs it
    expect(await read('rs2-fou.txt')).toMatch(new RegExp(`^port ${GUE_PORT} gue`, 'm'));
    expect((await json<Link[]>('rs1-gre0.json'))[0]?.flags).toContain('UP');
    expect(await read('rs1-gre0-rp.txt')).toBe('0\n');
    for (const i of [1, 2]) {
      const [link] = await json<Link[]>(`rs${i}-tunl0.json`);
      expect(link?.flags).toContain('UP');
      expect(link?.addr_info.filter((a) => a.local === TUN_VIP)).toEqual([expect.objectContaining({ prefixlen: 32 })]);
      const [tunl0, allRp] = (await read(`rs${i}-rp.txt`)).split('\n');
      expect(tunl0).toBe('0');
      expect(['0', '2']).toContain(allRp);
    }

    const answers = await json<Record<string, Answer[]>>('nat-tun.json');
    const at = (vip: string, port: number) => answers[`http://${vip}:${port}/`] ?? [];
    // NAT: round robin over both back ends on the mapped port; each sees the client's own address
    const nat = at(NAT_VIP, 80);
    expect(nat.map((a) => a.error ?? a.name).sort()).toEqual(['nat1', 'nat1', 'nat2', 'nat2']);
    expect(new Set(nat.map((a) => `${a.port} ${a.peer}`))).toEqual(new Set([`8080 ${GUEST_NET.client}`]));
    // TUN: the real servers got the client's packets for the VIP (decapsulated), from the client's address
    const ipip = at(TUN_VIP, 84);
    expect(ipip.map((a) => a.error ?? a.name).sort()).toEqual(['rs1', 'rs1', 'rs2', 'rs2']);
    expect(new Set(ipip.map((a) => `${a.local} ${a.peer}`))).toEqual(new Set([`${TUN_VIP} ${GUEST_NET.client}`]));
    expect(at(TUN_VIP, 85).map((a) => a.error ?? `${a.name} ${a.local} ${a.peer}`)).toEqual(
      Array(2).fill(`rs2 ${TUN_VIP} ${GUEST_NET.client}`),
    );
    expect(at(TUN_VIP, 86).map((a) => a.error ?? `${a.name} ${a.local} ${a.peer}`)).toEqual(
      Array(2).fill(`rs1 ${TUN_VIP} ${GUEST_NET.client}`),
    );

    // the director carried the NAT replies (OutPkts) and none of the TUN ones (they went straight to the client)
    const stats = await read('nat-tun-stats.txt');
    const outPkts = (svc: string) =>
      Number(new RegExp(`^TCP\\s+${svc.replaceAll('.', '\\.')}\\s+\\d+\\s+\\d+\\s+(\\d+)`, 'm').exec(stats)?.[1]);
    expect(outPkts(`${NAT_VIP}:80`)).toBeGreaterThan(0);
    expect(outPkts(`${TUN_VIP}:84`)).toBe(0);
    expect(outPkts(`${TUN_VIP}:85`)).toBe(0);
    expect(outPkts(`${TUN_VIP}:86`)).toBe(0);

    // realserver down undid everything `up` added on rs2 (DR VIP on lo, TUN VIP on tunl0, GUE port) and downed tunl0
    const links = await json<Link[]>('rs2-after-down.json');
    expect(links.flatMap((l) => l.addr_info.map((a) => a.local)).filter((a) => a === VIP || a === TUN_VIP)).toEqual([]);
    expect(links.find((l) => l.ifname === 'tunl0')?.flags).not.toContain('UP');
    expect(await read('rs2-fou-after-down.txt')).toBe('');
    expect(await read('rs2-down.txt')).toContain(`ip fou del port ${GUE_PORT}`);
  });
});

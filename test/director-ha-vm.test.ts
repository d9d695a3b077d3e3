import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultVmCacheDir, GUEST_NET, type GuestRun, runInGuest, topologyPrelude } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Drill: stop the VRRP MASTER of a director pair under load (issue 16, item 3). ONE QEMU guest (Debian kernel, real
// IPVS, Debian's keepalived) with network namespaces on one bridge: client, lb1 and lb2 (each `tiergate director
// run` on the same file plus keepalived with the director role's own keepalived.conf.j2 and notify script, rendered
// for the guest's addresses), rs1 and rs2 (`tiergate realserver up`, a small HTTP server).
//   Event: keepalived and the director on lb1 stop (SIGTERM, as `systemctl stop` sends).
//   Load: a long download and an idle keep-alive connection opened through the VIP before the event, and short
//   requests (a new connection each) one after the other from before the event until well after it.
//   Expected: lb2 holds the VIP within 3 s of lb1 giving it up (VRRP: lb1's priority-0 advert, then lb2's skew time;
//   the SIGTERM-to-release time before it is keepalived's shutdown, seconds under emulation, reported); the download and the keep-alive connection finish through lb2 (the
//   sync daemon had copied their connections to it); lb2's sync daemon turns from backup to master; the short
//   requests that failed are counted and reported: only connections opened within the sync lag (up to 2 s) before
//   the takeover may fail, lb2 not knowing them yet.
// Under TCG absolute times are not meaningful (Node's startup takes seconds); the takeover time is keepalived's own
// (priority-0 advert, then lb2's skew time) and the counts are exact.

const ROOT = join(import.meta.dirname, '..');
const NODE_BIN = join(ROOT, 'node_modules/.bin/node');
const CLI = join(ROOT, 'packages/cli/bin/tiergate.js');
/** As in director-vm.test.ts: V8 without memory protection keys, which QEMU's `-cpu max` offers and the host lacks. */
const NODE_FLAGS = ['--no-memory-protection-keys'];
const NODE = [NODE_BIN, ...NODE_FLAGS].join(' ');
const TIERGATE = `${NODE} ${CLI}`;
const VIP = GUEST_NET.vip;
const LB = { lb1: `${GUEST_NET.prefix}.2`, lb2: `${GUEST_NET.prefix}.3` } as const;
const rs = (i: number) => `${GUEST_NET.prefix}.${GUEST_NET.rsBase + i}`;
const NOTIFY = '/usr/local/lib/tiergate/vrrp-notify';
const COMPILE_CACHE = join(defaultVmCacheDir(), 'node-compile-cache');
const guestFile = (name: string) => readFileSync(new URL(`./guest/${name}`, import.meta.url), 'utf8');

const director = (name: string, state: 'master' | 'backup') => `  - name: ${name}
    interface: eth0
    vips: [${VIP}]
    vip_owner: keepalived
    reconcile_interval: 1s
    admin: { address: 127.0.0.1, port: 9902 }
    sync_daemon: { state: ${state}, interface: eth0, sync_id: 7 }
`;
const config = `version: 1
directors:
${director('lb1', 'master')}${director('lb2', 'backup')}virtual_services:
  - name: web
    address: ${VIP}
    port: 80
    scheduler: rr
    real_servers: [{ address: ${rs(1)} }, { address: ${rs(2)} }]
`;

/**
 * The director role's templates rendered with Jinja2 as Ansible renders them (trim_blocks), from the role's defaults
 * plus the host's variables: the guest has no systemd, so no track_script on tiergate-director.service.
 */
function renderRoleTemplate(template: string, vars: Record<string, unknown>): string {
  const py = `
import json, sys, jinja2, yaml
role = sys.argv[1]
defaults = yaml.safe_load(open(role + '/defaults/main.yml'))
env = jinja2.Environment(loader=jinja2.FileSystemLoader(role + '/templates'), trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
sys.stdout.write(env.get_template(sys.argv[2]).render({**defaults, **json.loads(sys.argv[3])}))
`;
  return execFileSync('python3', ['-c', py, join(ROOT, 'infra/roles/director'), template, JSON.stringify(vars)], { encoding: 'utf8' });
}
const hostVars = (name: 'lb1' | 'lb2') => ({
  ansible_managed: 'rendered by test/director-ha-vm.test.ts',
  director_name: name,
  keepalived_state: name === 'lb1' ? 'MASTER' : 'BACKUP',
  keepalived_priority: name === 'lb1' ? 150 : 100,
  keepalived_vips: [`${VIP}/32`],
  keepalived_virtual_router_id: 51,
  keepalived_track_director: false,
});

const script = `set -euo pipefail
${topologyPrelude()}
TG="${TIERGATE}"
NODE="${NODE}"
step() { echo "$(date +%s%N) $*" >> steps.txt; }
poll() { local i; for ((i = 0; i < \${2:-600}; i++)); do if eval "$1"; then return 0; fi; sleep 0.05; done; echo "poll timed out: $1" >&2; return 1; }
holds() { ip -n "$1" -o addr show dev eth0 | grep -q " ${VIP}/32 "; }
daemons() { ip netns exec "$1" ipvsadm -L --daemon | awk '{print $1}' | sort | tr '\\n' ' '; }
mkdir -p /tmp/ncc && cp -r '${COMPILE_CACHE}/.' /tmp/ncc/ && export NODE_COMPILE_CACHE=/tmp/ncc
step topology
ip link add br0 type bridge
ip addr add "$TG_BRIDGE_IP/24" dev br0
ip link set br0 up
tg_ns_add client "$TG_CLIENT_IP"
tg_ns_add lb1 ${LB.lb1}
tg_ns_add lb2 ${LB.lb2}
tg_ns_add rs1 ${rs(1)}
tg_ns_add rs2 ${rs(2)}
# keepalived's script security wants the notify script root's, in directories only root may write.
install -D -m 0755 vrrp-notify-lb1 ${NOTIFY}-lb1
install -D -m 0755 vrrp-notify-lb2 ${NOTIFY}-lb2

step servers
for i in 1 2; do
  ip netns exec rs$i $NODE ha-server.cjs rs$i > rs$i.log 2>&1 &
  ip netns exec rs$i $TG realserver up -c ha.yaml > rs$i-up.txt 2>&1 &
  UP[$i]=$!
done
wait \${UP[1]} \${UP[2]}
tg_wait_file rs1.ready 600; tg_wait_file rs2.ready 600

step directors
declare -A DIR KA
MON=()
for lb in lb1 lb2; do
  ip netns exec $lb $TG director run -c ha.yaml --name $lb > $lb-director.log 2>&1 &
  DIR[$lb]=$!
  # -P: VRRP only (no virtual_server here); own pid files, as two keepalived share the guest's /run.
  ip netns exec $lb keepalived -n -l -D -P -f keepalived-$lb.conf -p /run/ka-$lb.pid -r /run/ka-$lb-vrrp.pid > $lb-keepalived.log 2>&1 &
  KA[$lb]=$!
done
poll "holds lb1" 1200
poll "[[ \\$(daemons lb1) == 'master ' && \\$(daemons lb2) == 'backup ' ]]" 1200
poll "[[ -e /run/tiergate/vrrp-lb1.state && -e /run/tiergate/vrrp-lb2.state ]]" 1200
poll "ip netns exec lb2 ipvsadm -Ln | grep -q ${rs(2)}:80" 1200
holds lb2 && echo "lb2 holds the VIP too" >&2 && exit 1

step status
ip netns exec lb1 $TG director status -c ha.yaml --name lb1 > status-lb1-before.txt 2>&1 &
S1=$!
ip netns exec lb2 $TG director status -c ha.yaml --name lb2 > status-lb2-before.txt 2>&1 &
S2=$!
wait $S1 $S2

step load
# The short requests start only now (short.go): under emulation their loop would slow every Node start before.
ip netns exec client $NODE ha-client.cjs ${VIP} > client.log 2>&1 &
CLIENT=$!
tg_wait_file client.ready 1200
touch short.go
# The master sends its buffered connections at least every 2 s: wait until lb2 has the download's.
poll "ip netns exec lb2 ipvsadm -Lnc | grep -q ESTABLISHED" 200
sleep 2
ip netns exec lb2 ipvsadm -Lnc > lb2-conns-before.txt
ip netns exec lb1 ipvsadm -Lnc > lb1-conns-before.txt

step failover
# When each host gained or lost the VIP, by the kernel's own address events (timestamped by ip).
for lb in lb1 lb2; do ip -n $lb -ts -o monitor address dev eth0 > monitor-$lb.txt & MON[\${#MON[@]}]=$!; done
sleep 0.5
date +%s%N > failover-at-ns.txt
t0=$(date +%s%N)
kill -TERM \${KA[lb1]}
kill -TERM \${DIR[lb1]}
poll "holds lb2" 200
echo $(( ($(date +%s%N) - t0) / 1000000 )) > takeover-ms.txt
holds lb1 && echo "lb1 still holds the VIP" >&2 && exit 1
wait \${KA[lb1]} \${DIR[lb1]} || true
# Not fatal: without the switch the drill goes on, and the test names what is missing.
poll "grep -q 'sync daemon master on' lb2-director.log" 200 || true
ip netns exec lb2 ipvsadm -L --daemon > lb2-daemons-after.txt
kill \${MON[@]} || true
ip netns exec lb2 ipvsadm -Lnc > lb2-conns-after.txt

step after
touch hold.go dl.finish
# short requests go on for a while through lb2 alone
sleep 8
touch short.stop
wait $CLIENT
ip netns exec lb2 $TG director status -c ha.yaml --name lb2 > status-lb2-after.txt 2>&1 &
S1=$!
ip netns exec lb2 $TG director status -c ha.yaml --name lb2 --json > status-lb2-after.json 2>&1 &
S2=$!
wait $S1 $S2
step end
kill \${KA[lb2]} \${DIR[lb2]} || true
touch ha.done
`;

interface Short {
  readonly t: number;
  readonly ms: number;
  readonly name?: string;
  readonly error?: string;
}
interface ClientResult {
  download: { bytes: number; localPort: number; complete?: boolean; error?: string };
  hold: { first: { localPort: number; body: { name: string } }; second: { localPort?: number; body?: { name: string }; error?: string } };
  short: Short[];
}

/** When the VIP was added to or deleted from eth0, from `ip -ts -o monitor address` lines (guest clock, UTC), in ms. */
function vipEvent(monitor: string, kind: 'added' | 'Deleted'): number {
  const line = monitor.split('\n').find((l) => l.includes(` inet ${VIP}/32 `) && (kind === 'Deleted') === /^\[[^\]]+\] Deleted /.test(l));
  const ts = /^\[([^\]]+)\]/.exec(line ?? '')?.[1];
  if (!ts) throw new Error(`no VIP ${kind} event in:\n${monitor}`);
  // ip prints microseconds; Date takes milliseconds.
  return Date.parse(`${ts.slice(0, 23)}Z`);
}

function warmCompileCache(): void {
  const env = { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE };
  // `warm-cache` loads every command's modules (help alone loads only the option definitions).
  for (const args of [['warm-cache']]) execFileSync(NODE_BIN, [...NODE_FLAGS, CLI, ...args], { env, stdio: 'ignore' });
}

describe('director pair failover (QEMU guest: real keepalived, real IPVS and its sync daemon)', () => {
  let run: GuestRun | undefined;
  const read = (f: string) => readFile(join(run?.scratchDir ?? '/nonexistent', f), 'utf8');

  beforeAll(async () => {
    warmCompileCache();
    const files: Record<string, string> = {
      'ha.yaml': config,
      'ha-server.cjs': guestFile('ha-server.cjs'),
      'ha-client.cjs': guestFile('ha-client.cjs'),
    };
    for (const lb of ['lb1', 'lb2'] as const) {
      // The role's notify script, at a per-host path (one guest /usr for both namespaces).
      const vars = { ...hostVars(lb), tiergate_vrrp_notify_script: `${NOTIFY}-${lb}` };
      files[`keepalived-${lb}.conf`] = renderRoleTemplate('keepalived.conf.j2', vars);
      files[`vrrp-notify-${lb}`] = renderRoleTemplate('tiergate-vrrp-notify.j2', vars);
    }
    run = await runInGuest({ script, timeoutMs: 400_000, files });
    const steps = (await read('steps.txt').catch(() => '')).split('\n').filter(Boolean);
    const t0 = Number(steps[0]?.split(' ')[0]) / 1e6;
    const timeline = steps.map((l) => `+${Math.round(Number(l.split(' ')[0]) / 1e6 - t0)} ms ${l.split(' ')[1]}`).join(', ');
    console.info(`guest: boot ${run.bootMs} ms, total ${run.totalMs} ms, exit ${run.exitCode}; ${timeline}`);
  }, 430_000);

  afterAll(async () => {
    await run?.[Symbol.asyncDispose]();
  });

  const ran = () => {
    expect(run, 'the guest did not run').toBeDefined();
    const r = run as GuestRun;
    expect(
      existsSync(join(r.scratchDir, 'ha.done')),
      `drill did not finish (exit ${r.exitCode})\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`,
    ).toBe(true);
  };

  it('before: lb1 is MASTER with the VIP and the master sync daemon, lb2 BACKUP with the backup daemon; status says so', async () => {
    ran();
    const lb1 = await read('status-lb1-before.txt');
    const lb2 = await read('status-lb2-before.txt');
    expect(lb1, lb1).toMatch(new RegExp(`^VRRP: MASTER since \\S+; VIP \\(keepalived\\): ${VIP} held$`, 'm'));
    expect(lb1).toMatch(/^sync daemon: master on eth0 id 7 \(wanted: master\)$/m);
    // keepalived forks one notify script per transition, unordered: when lb2 passes through MASTER at start-up (its
    // first adverts race lb1's under emulation), the MASTER script can finish after the BACKUP one and leave MASTER
    // recorded (seen once in CI). status must then flag it as stale, never show lb2 as a plain MASTER. Serializing
    // the notifications (keepalived's notify_fifo) is the fix left for later (docs/director.md).
    expect(lb2, lb2).toMatch(
      new RegExp(
        `^VRRP: (BACKUP since \\S+|MASTER since \\S+ \\(recorded; no VIP here now: keepalived stopped without a notify\\?\\)); VIP \\(keepalived\\): ${VIP} not held$`,
        'm',
      ),
    );
    expect(lb2).toMatch(/^sync daemon: backup on eth0 id 7 \(wanted: backup\)$/m);
  });

  it('stopping the MASTER: lb2 holds the VIP within 3 s of lb1 giving it up, and switches its sync daemon to master', async () => {
    ran();
    const killedAt = Number(await read('failover-at-ns.txt')) / 1e6;
    const released = vipEvent(await read('monitor-lb1.txt'), 'Deleted');
    const taken = vipEvent(await read('monitor-lb2.txt'), 'added');
    const switched = (await read('lb2-director.log'))
      .split('\n')
      .filter((l) => l.includes('sync daemon master on eth0 (id 7) (holds the VIP: VRRP MASTER)'))
      .map((l) => (JSON.parse(l) as { time: number }).time)
      .find((time) => time > killedAt);
    expect(switched, "lb2's director never logged the switch to master").toBeDefined();
    console.info(
      `failover: SIGTERM → lb1 released the VIP ${Math.round(released - killedAt)} ms (keepalived's shutdown under emulation), ` +
        `→ lb2 took it ${Math.round(taken - released)} ms later (VRRP takeover: priority-0 advert + skew), ` +
        `${Math.round(taken - killedAt)} ms after the SIGTERM (${(await read('takeover-ms.txt')).trim()} ms by polling); ` +
        `lb2's sync daemon master ${Math.round((switched ?? 0) - taken)} ms after it took the VIP`,
    );
    expect(taken - released).toBeGreaterThanOrEqual(0);
    expect(taken - released).toBeLessThan(3_000);
    // ipvsadm -L --daemon: one line per running daemon; the backup one is gone
    expect((await read('lb2-daemons-after.txt')).trim()).toMatch(/^master sync daemon \(mcast=eth0, syncid=7[,)][^\n]*$/);
    const after = await read('status-lb2-after.txt');
    expect(after).toMatch(new RegExp(`^VRRP: MASTER since \\S+; VIP \\(keepalived\\): ${VIP} held$`, 'm'));
    expect(after).toMatch(/^sync daemon: master on eth0 id 7 \(wanted: master\)$/m);
    const json = JSON.parse(await read('status-lb2-after.json')) as { ha: { syncDaemons: { state: string }[]; vrrp: { state: string } } };
    expect(json.ha.syncDaemons.map((d) => d.state)).toEqual(['master']);
    expect(json.ha.vrrp.state).toBe('MASTER');
  });

  it('the long download and the open keep-alive connection started through lb1 finish through lb2 (connection sync)', async () => {
    ran();
    const result = JSON.parse(await read('client.json')) as ClientResult;
    // lb2 had both connections before the failover: the master's sync daemon sent them
    const before = await read('lb2-conns-before.txt');
    expect(before).toMatch(new RegExp(`TCP\\s+\\S+\\s+ESTABLISHED\\s+${GUEST_NET.client}:${result.download.localPort}\\s+${VIP}:80\\s+`));
    expect(before).toMatch(new RegExp(`${GUEST_NET.client}:${result.hold.first.localPort}\\s+${VIP}:80\\s+`));
    const server = result.hold.first.body.name;
    const slow = JSON.parse(
      await read(`${['rs1', 'rs2'].find((n) => existsSync(join(run?.scratchDir ?? '', `${n}-slow.json`)))}-slow.json`),
    ) as {
      sent: number;
      outcome: string;
    };
    expect(result.download.error).toBeUndefined();
    expect(result.download.complete).toBe(true);
    expect(slow.outcome).toBe('ended');
    expect(result.download.bytes).toBe(slow.sent);
    // the second request went on the same TCP connection, to the same real server, after the VIP moved
    expect(result.hold.second.error).toBeUndefined();
    expect(result.hold.second).toMatchObject({ localPort: result.hold.first.localPort, body: { name: server } });
    console.info(
      `download: ${result.download.bytes} bytes, finished after the failover; keep-alive: 2nd answer on port ${result.hold.first.localPort}`,
    );
  });

  it('short requests during the failover: counted; only those opened within the sync lag before the takeover may fail', async () => {
    ran();
    const { short } = JSON.parse(await read('client.json')) as ClientResult;
    const released = vipEvent(await read('monitor-lb1.txt'), 'Deleted');
    const taken = vipEvent(await read('monitor-lb2.txt'), 'added');
    const failed = short.filter((s) => s.error);
    console.info(
      `short requests: ${short.length}, failed ${failed.length} (${failed.map((f) => `${f.error} at ${f.t - released} ms from the VIP's release`).join(', ') || 'none'}); slowest ${Math.max(...short.map((s) => s.ms))} ms`,
    );
    expect(short.filter((s) => s.t < released - 1_000).length).toBeGreaterThan(0);
    // A connection whose SYN lb1 forwarded but which the master had not sent yet (it sends a connection at its
    // third packet and flushes at least every 2 s) reaches lb2 unknown: lb2 answers its next packet with a reset.
    // So failures are bounded to connections opened in the 2 s before the VIP left lb1, up to the takeover.
    for (const f of failed) {
      expect(f.t).toBeGreaterThan(released - 2_500);
      expect(f.t).toBeLessThan(taken + 500);
    }
    const afterwards = short.filter((s) => s.t > taken + 500);
    expect(afterwards.length).toBeGreaterThan(0);
    expect(afterwards.filter((s) => s.error)).toEqual([]);
    expect(new Set(short.filter((s) => s.name).map((s) => s.name))).toEqual(new Set(['rs1', 'rs2']));
  });
});

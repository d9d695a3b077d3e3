import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultVmCacheDir, GUEST_NET, type GuestRun, runInGuest, topologyPrelude } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The L4-aware drain against real IPVS (QEMU guest, one boot): a director running `tiergate director run` with an
// http check of the proxies' monitor_uri, two real servers each running `tiergate realserver up` and
// `tiergate proxy` in front of a local app, and a client sending one request per new connection through the VIP.
// Drill: SIGTERM to proxy1 under that load → the director quiesces rs1 (weight 0) while proxy1 still serves, then
// proxy1 exits 0: 0 failed requests. Then `tiergate director drain` / `undrain` of rs2 by hand. Under TCG absolute
// times mean little (the figures are logged, not asserted); the counts are exact.

const guestFile = (name: string) => readFileSync(new URL(`./guest/${name}`, import.meta.url), 'utf8');
const NODE_BIN = join(import.meta.dirname, '../node_modules/.bin/node');
const CLI = join(import.meta.dirname, '..', 'packages', 'cli', 'bin', 'tiergate.js');
/** As in director-vm.test.ts: V8 must not use memory protection keys under QEMU's `-cpu max`. */
const NODE_FLAGS = ['--no-memory-protection-keys'];
const NODE = [NODE_BIN, ...NODE_FLAGS].join(' ');
const TIERGATE = `${NODE} ${CLI}`;
const VIP = GUEST_NET.vip;
const rs = (i: number) => `${GUEST_NET.prefix}.${GUEST_NET.rsBase + i}`;
const COMPILE_CACHE = join(defaultVmCacheDir(), 'node-compile-cache');

// drain_delay is explicit and long: under TCG on a loaded host the director's checks run late, and this drill is
// about the order of events (quiesced before the listener closes), not about the auto value (unit-tested).
const config = `version: 1
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
    real_servers: [{ address: ${rs(1)} }, { address: ${rs(2)} }]
    health_check: { type: http, path: /-/tiergate/health, expect_status: [200], interval: 500ms, timeout: 1s, fall: 2, rise: 1, jitter: 0 }
proxy:
  listeners: [{ address: 0.0.0.0, port: 80 }]
  admin: { address: 127.0.0.1, port: 9901 }
  monitor_uri: /-/tiergate/health
  drain_delay: 12s
  shutdown_timeout: 5s
  access_log: false
  pools:
    app:
      servers: [{ address: "127.0.0.1:8080" }]
telemetry:
  metrics: { enabled: false }
`;

const script = `set -euo pipefail
${topologyPrelude()}
TG="${TIERGATE}"
NODE="${NODE}"
D() { ip netns exec director "$@"; }
poll() { local i; for ((i = 0; i < 1200; i++)); do if eval "$1"; then return 0; fi; sleep 0.1; done; echo "poll timed out: $1" >&2; return 1; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
step() { echo "$(ms) $*" >> steps.txt; }
weight() { D ipvsadm -Ln -t $TG_VIP:80 | awk -v s="$1:80" '$2 == s { print $4 }'; }
mkdir -p /tmp/ncc && cp -r '${COMPILE_CACHE}/.' /tmp/ncc/ && export NODE_COMPILE_CACHE=/tmp/ncc
step topology
tg_topology_up 2
for i in 1 2; do
  ip netns exec rs$i $NODE director-echo.cjs app$i 8080 0 > app$i.log 2>&1 &
  ip netns exec rs$i $TG realserver up -c tiergate.yaml > rs$i-up.txt &
  UP[$i]=$!
done
wait \${UP[1]} \${UP[2]}
for i in 1 2; do tg_wait_file app$i.ready 1200; done
step proxies
for i in 1 2; do ip netns exec rs$i $TG proxy -c tiergate.yaml > proxy$i.out 2> proxy$i.err & PROXY[$i]=$!; done
poll "grep -q '^admin on' proxy1.out && grep -q '^admin on' proxy2.out"
step director
ip netns exec director $TG director run -c tiergate.yaml > director.log 2>&1 &
DAEMON=$!
poll "[[ \\$(weight ${rs(1)}) == 1 && \\$(weight ${rs(2)}) == 1 ]]"
step load
ip netns exec client $NODE drain-client.cjs http://$TG_VIP:80/ client.json &
CLIENT=$!
tg_wait_file client.started 1200
sleep 3
step sigterm
t0=$(ms)
kill -TERM \${PROXY[1]}
poll "[[ \\$(weight ${rs(1)}) == 0 ]]"
echo $(( $(ms) - t0 )) > quiesce-ms.txt
set +e; wait \${PROXY[1]}; echo $? > proxy1.code; set -e
echo $(( $(ms) - t0 )) > proxy1-exit-ms.txt
step gone
sleep 3
touch client.stop; wait $CLIENT
step manual
D $TG director drain -c tiergate.yaml --service web --server ${rs(2)} --timeout 5s > drain.txt 2> drain.err
weight ${rs(2)} > weight-drained.txt
D $TG director undrain -c tiergate.yaml --service ${VIP}:80 --server ${rs(2)}:80 > undrain.txt 2> undrain.err
weight ${rs(2)} > weight-undrained.txt
step end
kill -TERM $DAEMON \${PROXY[2]}; wait $DAEMON \${PROXY[2]} || true
touch drill.done
`;

/** Warms tiergate's compile cache on the host: the guest gets a copy (the same V8 flags key the cache). */
function warmCompileCache(): void {
  const env = { ...process.env, NODE_COMPILE_CACHE: COMPILE_CACHE };
  // `warm-cache` loads every command's modules (help alone loads only the option definitions).
  for (const args of [['warm-cache']]) execFileSync(NODE_BIN, [...NODE_FLAGS, CLI, ...args], { env, stdio: 'ignore' });
}

describe('L4-aware drain against real IPVS (QEMU guest, one boot)', () => {
  let run: GuestRun | undefined;
  const read = (f: string) => readFile(join(run?.scratchDir ?? '/nonexistent', f), 'utf8');

  beforeAll(async () => {
    warmCompileCache();
    run = await runInGuest({
      script,
      timeoutMs: 1_140_000,
      files: {
        'tiergate.yaml': config,
        'director-echo.cjs': guestFile('director-echo.cjs'),
        'drain-client.cjs': guestFile('drain-client.cjs'),
      },
    });
    const steps = (await read('steps.txt').catch(() => '')).split('\n').filter(Boolean);
    const t0 = Number(steps[0]?.split(' ')[0]);
    const timeline = steps.map((l) => `+${Number(l.split(' ')[0]) - t0} ms ${l.split(' ')[1]}`).join(', ');
    console.info(`guest: boot ${run.bootMs} ms, total ${run.totalMs} ms, exit ${run.exitCode}; ${timeline}`);
  }, 1_200_000);

  afterAll(async () => {
    await run?.[Symbol.asyncDispose]();
  });

  it('SIGTERM to a proxy node under load: quiesced by the director before it closes, 0 failed requests, exit 0', async () => {
    expect(run, 'the guest did not run').toBeDefined();
    const r = run as GuestRun;
    expect(existsSync(join(r.scratchDir, 'drill.done')), `drill did not finish (exit ${r.exitCode})\n${r.stderr}\n${r.stdout}`).toBe(true);
    const client = JSON.parse(await read('client.json')) as {
      ok: number;
      statuses: Record<string, number>;
      failed: { at: number; error: string }[];
      servers: Record<string, number>;
    };
    const quiesceMs = Number(await read('quiesce-ms.txt'));
    const exitMs = Number(await read('proxy1-exit-ms.txt'));
    console.info(
      `drill: ${client.ok} requests ok, ${client.failed.length} failed; rs1 at weight 0 after ${quiesceMs} ms, proxy1 exited after ${exitMs} ms`,
    );
    expect([client.failed, client.statuses]).toEqual([[], {}]);
    expect(client.servers.app1).toBeGreaterThan(0);
    expect(client.servers.app2).toBeGreaterThan(0);
    expect(quiesceMs).toBeLessThan(exitMs);
    expect(await read('proxy1.code')).toBe('0\n');
  });

  it('`tiergate director drain` sets weight 0 in the kernel and `undrain` restores it', async () => {
    expect(await read('drain.txt')).toMatch(new RegExp(`^drained tcp/${VIP}:80 -> ${rs(2)}:80 `));
    expect(await read('weight-drained.txt')).toBe('0\n');
    expect(await read('undrain.txt')).toBe(`undrained: tcp/${VIP}:80 -> ${rs(2)}:80\n`);
    expect(await read('weight-undrained.txt')).toBe('1\n');
  });
});

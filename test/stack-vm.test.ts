import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type CollectedSpan, type GuestRun, runInGuest, TOPOLOGY_SH, topologyPrelude } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The whole stack as users deploy it (issue 16): the classic two-director topology as separate hosts on one L2
// segment, put in place by a real `ansible-playbook site.yml` (test/ansible/stack-vm, the classic inventory in a
// private range) over ssh, then failure drills under a request loop from `client` to the VIP.
//
// Where the hosts live. Only the directors need a kernel with IPVS, and this machine's kernel has none, so lb1 and lb2
// are systemd-nspawn containers inside a QEMU guest (Debian's kernel, real IPVS, real keepalived), and everything
// else runs on this machine's own kernel at native speed: proxy1, proxy2, app1, app2, redis1 as systemd-nspawn
// containers (test/stack/host.sh), client and collector as plain network namespaces. The guest's NIC is a tap on the
// segment's bridge (runInGuest's `uplink`), so VRRP, IPVS-DR's MAC rewrite and the sync daemon's multicast cross
// between the guest and the host exactly as between machines. The controller runs on the segment (10.99.0.254) and
// reaches every host over ssh, as operators do. Under QEMU's software CPU a task costs seconds, so with every host
// in the guest a deploy took ~40 min; with only the directors there it fits in `npm test` (docs/deploy.md, "The whole
// stack in a test").
//
// The drills, one after the other, under one request loop (GET / with a login session, a new connection each):
//   baseline   the login is seen on both app servers; X-Real-IP carries the client's address to the app; traces
//   app kill   SIGKILL to app1's process (systemd restarts it): 0 failed requests (the proxies retry on app2)
//   redis      `systemctl restart redis-server` on redis1: the session survives (RDB saved at shutdown), the apps
//              serve it again without a restart of their own
//   proxy kill SIGKILL to proxy1's process: the failed requests are counted (IPVS sends new connections to proxy1
//              until the director's check fails: fall 2 × interval 2 s); the director quiesces it, systemd restarts
//              it, and it gets traffic again
//   rolling    the proxies' play with -e realserver_proxy_restart=true (one host at a time): each is quiesced by lb1
//              before it exits cleanly, and the next restarts only once lb1 routes to it again (`tiergate director
//              wait`); 0 failed requests
//   drain      a drain by hand of proxy2 on lb1 (what `tiergate director drain` sends the daemon): weight 0 in lb1's
//              kernel (ipvsadm); undrain: back to 1
//   ha status  what `tiergate director status` reads (keepalived's record, the VIP, `ipvsadm -L --daemon`): lb1
//              MASTER with the VIP and the master sync daemon, lb2 BACKUP with the backup one
//   failover   lb1 (VRRP MASTER) stops keepalived and its director: lb2 holds the VIP within 3 s; a paced download
//              and a WebSocket opened through lb1 were in lb2's connection table before the stop and finish through
//              lb2 (the IPVS sync daemon had their connections); lb2 switches its sync daemon to master
// (These drills took over test/drain-vm.test.ts and test/director-ha-vm.test.ts, which booted a guest each.)
// Absolute times through the guest mean little (its CPU is emulated); the request counts are exact.

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const VIP = '10.99.0.100';
const CLIENT = '10.99.0.50';
const COLLECTOR = '10.99.0.40';
const HOSTS = {
  lb1: '10.99.0.2',
  lb2: '10.99.0.3',
  proxy1: '10.99.0.11',
  proxy2: '10.99.0.12',
  app1: '10.99.0.21',
  app2: '10.99.0.22',
  redis1: '10.99.0.30',
} as const;
type Host = keyof typeof HOSTS;
// Namespace names are global on the machine: one prefix per test process.
const TAG = `tg${process.pid % 100_000}`;
// The failover drill's download: 6 MiB at 256 KiB/s, ~24 s, long enough to span the takeover.
const DOWNLOAD_BYTES = 6 * 1024 * 1024;
const DOWNLOAD_RATE = 256 * 1024;
const SEGMENT_NS = `${TAG}-seg`;
const NETNS_PREFIX = `${TAG}-`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, signal?: AbortSignal) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (signal?.aborted) throw new Error(`${what}: the guest ended first`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(250);
  }
}

const guestScript = `set -euo pipefail
${topologyPrelude()}
# Traced: the guest's stderr is what a failure shows.
set -x
export TG_AUTHORIZED_KEYS=/tg-scratch/id.pub TG_CONTAINER_SEED=$(cat /tg-scratch/seed-path)
ip link add br0 type bridge
ip link set br0 up
tg_uplink_up
tg_hosts_init
tg_container_up lb1 ${HOSTS.lb1} --bind-ro=${ROOT}:/opt/tiergate-release
tg_container_up lb2 ${HOSTS.lb2} --bind-ro=${ROOT}:/opt/tiergate-release
for h in lb1 lb2; do tg_container_wait $h; tg_container_ssh $h; done
touch guest.ready
set +x
# The host drives everything from here (deploy and drills); the guest only keeps its hosts running (at most 40 min).
tg_wait_file alongside.done 24000
`;

interface Req {
  readonly t: number;
  readonly ms: number;
  readonly status?: number;
  readonly instance?: string;
  readonly client?: string;
  readonly user?: string;
  readonly error?: string;
}
interface Snapshot {
  readonly t: number;
  readonly text: string;
}

describe('the deployed stack (ansible-playbook site.yml over ssh; directors in a QEMU guest with real IPVS and keepalived)', () => {
  let stackDir = '';
  let host: ChildProcess | undefined;
  let run: GuestRun | undefined;
  let setupError: unknown;
  const steps: Record<string, number> = {};
  const ipvs: Snapshot[] = [];
  const step = (name: string) => {
    steps[name] = Date.now();
  };
  const read = (f: string) => readFile(join(stackDir, f), 'utf8');
  const requests = async () => (JSON.parse(await read('client.json')) as { requests: Req[] }).requests;
  const between = (rs: Req[], from: string, to: string) =>
    rs.filter((r) => r.t >= (steps[from] ?? Number.NaN) && r.t < (steps[to] ?? Number.NaN));

  /** `ip` arguments that run CMD on HOST over ssh from the segment, as an operator would. */
  const sshArgs = (h: Host, cmd: string) => ['netns', 'exec', SEGMENT_NS, 'ssh', '-F', join(stackDir, 'ssh_config'), HOSTS[h], cmd];
  /** Runs CMD on HOST over ssh from the segment; its stdout. */
  const ssh = async (h: Host, cmd: string, timeoutMs = 120_000) =>
    (await exec('ip', sshArgs(h, cmd), { timeout: timeoutMs, maxBuffer: 64 << 20 })).stdout;
  /** Every process the test starts besides the guest, so that a failure anywhere leaves none running. */
  const children: ChildProcess[] = [];
  const killChildren = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  /** Spawns with stdout and stderr appended to stackDir/LOG (a file descriptor: spawn needs one, not a stream). */
  const spawnLogged = (cmd: string, args: string[], log: string, options: Parameters<typeof spawn>[2] = {}, track = true) => {
    const fd = openSync(join(stackDir, log), 'a');
    try {
      const child = spawn(cmd, args, { cwd: stackDir, ...options, stdio: ['ignore', fd, fd] });
      if (track) children.push(child);
      return child;
    } finally {
      closeSync(fd);
    }
  };
  const inNetns = (name: string, args: string[], log: string) =>
    spawnLogged('ip', ['netns', 'exec', `${NETNS_PREFIX}${name}`, NODE, ...args], log);

  /** `ansible-playbook site.yml` from the segment (the controller at .254), as users run it from infra/; its exit code. */
  async function playbook(args: string[], log: string): Promise<number> {
    const env = {
      ...process.env,
      ANSIBLE_CONFIG: join(ROOT, 'infra/ansible.cfg'),
      ANSIBLE_SSH_ARGS: `-F ${join(stackDir, 'ssh_config')} -o ControlMaster=auto -o ControlPersist=120s`,
      ANSIBLE_SSH_CONTROL_PATH_DIR: join(stackDir, 'cp'),
      ANSIBLE_FORCE_COLOR: '0',
      ANSIBLE_NOCOLOR: '1',
    };
    const inventory = join(ROOT, 'test/ansible/stack-vm/hosts.yml');
    const child = spawnLogged('ip', ['netns', 'exec', SEGMENT_NS, 'ansible-playbook', '-i', inventory, 'site.yml', ...args], log, {
      cwd: join(ROOT, 'infra'),
      env,
    });
    return new Promise<number>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGTERM'), 1_200_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve(code ?? -1);
      });
    });
  }

  async function deployAndDrill(guestDir: string, signal: AbortSignal): Promise<void> {
    try {
      await drills(guestDir, signal);
    } finally {
      killChildren();
    }
  }

  async function drills(guestDir: string, signal: AbortSignal): Promise<void> {
    await waitFor('the guest hosts', () => existsSync(join(guestDir, 'guest.ready')), 900_000, signal);
    step('booted');
    const collector = inNetns('collector', [join(import.meta.dirname, 'stack/collector.ts'), COLLECTOR, stackDir], 'collector.log');
    await waitFor('the collector', () => existsSync(join(stackDir, 'collector.ready')), 60_000);

    // The deploy. -e tiergate_serial=2: both hosts of a tier at once (a first deploy has no traffic to keep).
    const rc = await playbook(['-e', 'tiergate_serial=2'], 'playbook.log');
    step('deployed');
    await writeFile(join(stackDir, 'playbook.rc'), String(rc));
    const units = 'tiergate-director keepalived tiergate-realserver tiergate-proxy tiergate-app redis-server';
    let services = '';
    let starts = '';
    for (const h of Object.keys(HOSTS) as Host[]) {
      services += `== ${h}\n${await ssh(h, `systemctl is-active ${units} || true`).catch((e: Error) => `ssh failed: ${e.message}\n`)}`;
      // How often each unit was started by the deploy (a first deploy starts each once: no restart handler after it).
      const journal = await ssh(h, `journalctl --no-pager -o cat ${units.replace(/(\S+)/g, '-u $1')}`).catch(() => '');
      starts += journal
        .split('\n')
        .filter((l) => l.startsWith('Started ') || l.startsWith('Finished '))
        .map((l) => `${h} ${l.split(' ')[1]}\n`)
        .join('');
    }
    await writeFile(join(stackDir, 'services.txt'), services);
    await writeFile(join(stackDir, 'starts.txt'), starts);
    if (rc !== 0) {
      await journals();
      collector.kill('SIGTERM');
      throw new Error(`ansible-playbook exited with ${rc}`);
    }

    await waitFor(
      'lb1 holding the VIP',
      async () => (await ssh('lb1', 'ip -o addr show dev eth0')).includes(` ${VIP}/32 `),
      120_000,
      signal,
    );
    // The director's view, once a second, for the proxy-kill drill: one ssh session running a bounded loop; each
    // snapshot is stamped with this machine's clock when it has arrived whole (the guest's clock is its own).
    const watch = spawn('ip', sshArgs('lb1', 'for i in $(seq 1200); do echo @; ipvsadm -Ln; sleep 1; done'));
    children.push(watch);
    let pending = '';
    watch.stdout.setEncoding('utf8').on('data', (d: string) => {
      pending += d;
      const parts = pending.split('@\n');
      pending = parts.pop() ?? '';
      for (const text of parts) if (text.trim() !== '') ipvs.push({ t: Date.now(), text });
    });

    // The directors program their table only once Node has started them, which takes a while under emulation.
    const weighted = (ip: string) => new RegExp(`${ip.replaceAll('.', '\\.')}:80\\s+Route\\s+1\\s`);
    await waitFor(
      "both proxies in lb1's table",
      () => [HOSTS.proxy1, HOSTS.proxy2].every((p) => weighted(p).test(ipvs.at(-1)?.text ?? '')),
      600_000,
    );
    step('table');
    const client = inNetns('client', [join(import.meta.dirname, 'stack/client.cjs'), VIP, stackDir], 'client.log');
    const clientDone = new Promise((r) => client.on('close', r));
    await waitFor('the client logged in through the VIP', () => existsSync(join(stackDir, 'client.ready')), 300_000);
    step('baseline');
    await sleep(15_000);

    const pidOf = async (h: Host, unit: string) => (await ssh(h, `systemctl show -P MainPID ${unit}`)).trim();
    step('app-kill');
    const appBefore = await pidOf('app1', 'tiergate-app');
    // kill -9 of the app's process, as a crash would (`systemctl kill` reports EIO in these containers: systemd
    // cannot use cgroup.kill there, though the signal reaches the process).
    await ssh('app1', `kill -9 ${appBefore}`);
    await waitFor('app1 restarted by systemd', async () => ![appBefore, '0'].includes(await pidOf('app1', 'tiergate-app')), 120_000);
    await writeFile(join(stackDir, 'app1-pid-before.txt'), appBefore);
    await sleep(15_000);

    step('redis-restart');
    const appsBefore = [await pidOf('app1', 'tiergate-app'), await pidOf('app2', 'tiergate-app')];
    await ssh('redis1', 'systemctl restart redis-server.service');
    step('redis-restarted');
    await sleep(15_000);
    const appsAfter = [await pidOf('app1', 'tiergate-app'), await pidOf('app2', 'tiergate-app')];
    await writeFile(join(stackDir, 'apps-pids.json'), JSON.stringify({ before: appsBefore, after: appsAfter }));

    const proxyBefore = await pidOf('proxy1', 'tiergate-proxy');
    // The proxy's one process (`workers: 1`, the schema's default, which the classic inventory keeps: its serving
    // image, re-executed in place, so the unit's MainPID). systemd would restart it within ~3 s, inside the
    // director's check window (fall 2 × interval 2 s), so the node would never be seen down: for the drill its
    // restart waits 10 s (a runtime drop-in, removed afterwards), as a node that takes a while to come back.
    const dropIn = '/run/systemd/system/tiergate-proxy.service.d';
    await ssh('proxy1', `mkdir -p ${dropIn} && printf '[Service]\\nRestartSec=10s\\n' > ${dropIn}/drill.conf && systemctl daemon-reload`);
    step('proxy-kill');
    await ssh('proxy1', `kill -9 ${proxyBefore}`);
    await waitFor(
      'proxy1 restarted by systemd',
      async () => ![proxyBefore, '0'].includes(await pidOf('proxy1', 'tiergate-proxy')),
      120_000,
    );
    step('proxy-restarted');
    // Quiesced by the director's check (weight 0), then back with its weight once the check passes again.
    const quiesced0 = (ip: string) => new RegExp(`${ip.replaceAll('.', '\\.')}:80\\s+Route\\s+0\\s`);
    const killedAt = steps['proxy-kill'] ?? 0;
    await waitFor('proxy1 quiesced in lb1', () => ipvs.some((s) => s.t > killedAt && quiesced0(HOSTS.proxy1).test(s.text)), 120_000);
    const quiescedAt = ipvs.find((s) => s.t > killedAt && quiesced0(HOSTS.proxy1).test(s.text))?.t ?? 0;
    await waitFor('proxy1 back in lb1', () => ipvs.some((s) => s.t > quiescedAt && weighted(HOSTS.proxy1).test(s.text)), 120_000);
    step('proxy-back');
    await ssh('proxy1', `rm -r ${dropIn} && systemctl daemon-reload`);
    await sleep(10_000);

    // A rolling restart as an operator runs one: the proxies' play with -e realserver_proxy_restart=true, one host at
    // a time. The role's handlers restart tiergate-proxy on proxy1 (it leaves by the L4-aware drain), then wait on the
    // director (`tiergate director wait`, delegated) until its daemon routes to it again, and only then proxy2.
    // (Before that wait, `systemctl restart` returned while lb1 still had proxy1 at weight 0, the next node was
    // quiesced meanwhile, and a CI run saw IPVS refuse 4 connections with both at weight 0.)
    step('rolling');
    // The wait runs on lb1 only here (lb1 holds the VIP): each wait is a Node and a Python start on the emulated CPU,
    // tens of seconds, and lb2's would add as much again while proving nothing lb1's does not.
    const rollingRc = await playbook(
      ['--limit', 'proxies', '-e', 'realserver_proxy_restart=true', '-e', '{"realserver_proxy_directors": ["lb1"]}'],
      'rolling.log',
    );
    step('rolled');
    await writeFile(join(stackDir, 'rolling.json'), JSON.stringify({ rc: rollingRc }));
    await sleep(5_000);

    // A re-run with a changed config: the proxies' play alone (--limit: the directors' play under the emulator is
    // not re-run), one variable changed (the app pool's algorithm in tiergate.yaml). The common role's template task
    // notifies `tiergate config changed`; the units run already, so the guard lets the handlers act: tiergate-proxy
    // is reloaded (ExecReload: same MainPID, now with the new pool), tiergate-realserver too. Under the request loop.
    step('redeploy');
    const proxyPids = async () => Promise.all((['proxy1', 'proxy2'] as const).map((p) => pidOf(p, 'tiergate-proxy')));
    const redeployBefore = await proxyPids();
    const redeployRc = await playbook(
      ['--limit', 'proxies', '-e', 'tiergate_serial=2', '-e', 'stack_app_algorithm=round_robin'],
      'redeploy.log',
    );
    step('redeployed');
    const algorithm = async (p: Host) =>
      (JSON.parse(await ssh(p, 'curl -sf http://127.0.0.1:9901/status')) as { pools: { name: string; algorithm: string }[] }).pools.find(
        (x) => x.name === 'app',
      )?.algorithm;
    // The unit's reload returns once the proxy has applied the file (ExecReload is `tiergate proxy reload`, POST
    // /reload), so one read right after the playbook sees the new pool on both. (With `kill -HUP $MAINPID` it
    // returned before the proxy had read anything: one CI run read proxy2's old algorithm here.)
    await writeFile(
      join(stackDir, 'redeploy.json'),
      JSON.stringify({
        rc: redeployRc,
        before: redeployBefore,
        after: await proxyPids(),
        algorithms: [await algorithm('proxy1'), await algorithm('proxy2')],
      }),
    );
    await sleep(5_000);

    // Draining by hand on lb1: what `tiergate director drain` / `undrain` send to lb1's daemon (POST /drain and
    // /undrain on its admin listener, the bodies of packages/cli/src/actions/director.ts), sent with curl: the
    // daemon sets weight 0 in the kernel (read with the real ipvsadm) and gives proxy2 back to the config and its
    // check. The CLI's own part (file → admin URL → body, its output) is test/director-drain-cli.test.ts's; two Node
    // starts under the emulator here cost minutes on a loaded machine and test nothing of the kernel's.
    step('drain');
    const admin = (path: string, body: object) =>
      ssh('lb1', `curl -sS --max-time 60 -H 'content-type: application/json' -d '${JSON.stringify(body)}' http://127.0.0.1:9902/${path}`);
    const weightOf = async (server: string) =>
      (await ssh('lb1', `ipvsadm -Ln -t ${VIP}:80`))
        .split('\n')
        .find((l) => l.includes(` ${server}:80 `))
        ?.trim()
        .split(/\s+/)[3] ?? 'absent';
    await writeFile(
      join(stackDir, 'drain.json'),
      await admin('drain', { service: 'web-http', server: HOSTS.proxy2, after: 'keep', wait: true, timeout_ms: 5_000 }),
    );
    await writeFile(join(stackDir, 'weight-drained.txt'), await weightOf(HOSTS.proxy2));
    await sleep(3_000);
    await writeFile(join(stackDir, 'undrain.json'), await admin('undrain', { service: `${VIP}:80`, server: `${HOSTS.proxy2}:80` }));
    const undrained = Date.now();
    // The daemon puts the configured weight back at its next cycle (reconcile_interval 5 s; more under emulation).
    await waitFor('proxy2 back at weight 1 after undrain', async () => (await weightOf(HOSTS.proxy2)) === '1', 60_000).catch(() => {});
    await writeFile(join(stackDir, 'weight-undrained.txt'), `${await weightOf(HOSTS.proxy2)} ${Date.now() - undrained}`);
    step('undrained');
    await sleep(3_000);

    // The pair before the failover, read where `tiergate director status` reads it: keepalived's record (the notify
    // script's file), the VIP on eth0, the kernel's sync daemons. (The command itself, a Node start under the
    // emulator, took 2–6 minutes for the two directors on a loaded machine; its lines are
    // packages/director/test/sync-role.test.ts's.)
    step('ha-status');
    for (const h of ['lb1', 'lb2'] as const) {
      await writeFile(join(stackDir, `vrrp-${h}-before.txt`), await ssh(h, `cat /run/tiergate/vrrp-${h}.state`));
      await writeFile(join(stackDir, `vip-${h}-before.txt`), await ssh(h, 'ip -o addr show dev eth0'));
      await writeFile(join(stackDir, `daemons-${h}-before.txt`), await ssh(h, 'ipvsadm -L --daemon'));
    }

    // Director failover: lb1, the VRRP MASTER and sync-daemon master, stops keepalived and its director while a
    // paced download and a WebSocket opened through it are in flight. lb2 is watched from before the stop.
    const failover = inNetns(
      'client',
      [join(import.meta.dirname, 'stack/failover-client.ts'), VIP, stackDir, String(DOWNLOAD_BYTES), String(DOWNLOAD_RATE)],
      'failover.log',
    );
    const failoverDone = new Promise((r) => failover.on('close', r));
    // failover.ready holds the two connections' client ports (JSON; read until whole).
    let ports = { download: 0, websocket: 0 };
    await waitFor(
      'the download and the WebSocket through lb1',
      () => {
        try {
          ports = JSON.parse(readFileSync(join(stackDir, 'failover.ready'), 'utf8'));
          return true;
        } catch {
          return false;
        }
      },
      120_000,
    );
    // The sync daemon sends connection state to the backup about once a second (seconds under emulation on a busy
    // host: a fixed 3 s wait once read lb2's table before the download's entry had arrived): lb2's table is read
    // until both connections are there, then kept for the test to check.
    let lb2Conns = '';
    const synced = () => [ports.download, ports.websocket].every((p) => new RegExp(`\\sESTABLISHED\\s+${CLIENT}:${p}\\s`).test(lb2Conns));
    await waitFor(
      "the download's and the WebSocket's connections in lb2's table (connection sync)",
      async () => {
        lb2Conns = await ssh('lb2', 'ipvsadm -Lnc');
        return synced();
      },
      30_000,
    ).catch(() => {});
    await writeFile(join(stackDir, 'lb2-conns-before.txt'), lb2Conns);
    step('failover');
    const holds = waitFor(
      'lb2 holding the VIP',
      async () => (await ssh('lb2', 'ip -o addr show dev eth0')).includes(` ${VIP}/32 `),
      60_000,
    ).then(() => step('lb2-holds'));
    await ssh('lb1', 'systemctl stop keepalived.service tiergate-director.service');
    step('lb1-stopped');
    await holds;
    await sleep(6_000);
    await writeFile(join(stackDir, 'failover.stop'), '');
    await failoverDone;
    step('failover-end');
    // lb2's director turns its sync daemon from backup to master once it holds the VIP (under a second, measured).
    await waitFor(
      'lb2 running the master sync daemon',
      async () => /^master /m.test(await ssh('lb2', 'ipvsadm -L --daemon')),
      30_000,
    ).catch(() => {});
    await writeFile(join(stackDir, 'daemons-lb2-after.txt'), await ssh('lb2', 'ipvsadm -L --daemon'));
    // What `director status` reads for its VRRP line: the notify script's record (the line itself is checked on
    // both directors before the failover; its wording in packages/director/test/sync-role.test.ts).
    await writeFile(join(stackDir, 'vrrp-lb2-after.txt'), await ssh('lb2', 'cat /run/tiergate/vrrp-lb2.state'));

    await writeFile(join(stackDir, 'client.stop'), '');
    await clientDone;
    watch.kill('SIGTERM');
    step('end');
    await writeFile(join(stackDir, 'ipvs-lb1.txt'), ipvs.map((x) => `@ ${x.t}\n${x.text}`).join(''));
    // The exporters send their last batch within their 5 s schedule.
    await sleep(8_000);
    collector.kill('SIGTERM');
    await waitFor('spans.json', () => existsSync(join(stackDir, 'spans.json')), 30_000);
    await journals();
  }

  async function journals(): Promise<void> {
    for (const h of Object.keys(HOSTS) as Host[]) {
      const j = await ssh(h, "journalctl --no-pager -o short-iso-precise -u 'tiergate-*' -u keepalived -u redis-server").catch(
        (e: Error) => `ssh failed: ${e.message}`,
      );
      await writeFile(join(stackDir, `journal-${h}.txt`), j);
    }
  }

  beforeAll(async () => {
    stackDir = await mkdtemp(join(tmpdir(), 'tg-stack-'));
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tiergate-stack-test', '-f', join(stackDir, 'id')]);
    await writeFile(
      join(stackDir, 'ssh_config'),
      [
        'Host 10.99.0.*',
        '  User root',
        `  IdentityFile ${join(stackDir, 'id')}`,
        '  IdentitiesOnly yes',
        // Throwaway hosts with the image's host keys: nothing to pin.
        '  StrictHostKeyChecking no',
        '  UserKnownHostsFile /dev/null',
        '  LogLevel ERROR',
        // One connection per host for the test's own commands (an ssh handshake in the guest costs seconds).
        '  ControlMaster auto',
        `  ControlPath ${join(stackDir, 'cm-%h')}`,
        '  ControlPersist 30s',
        '',
      ].join('\n'),
    );
    host = spawnLogged(
      'bash',
      [join(import.meta.dirname, 'stack/host.sh')],
      'host.log',
      {
        // Its own process group: if this test's worker is killed, host.sh outlives it, sees its parent gone and
        // tears the hosts down.
        detached: true,
        env: {
          ...process.env,
          STACK_DIR: stackDir,
          RELEASE: ROOT,
          TOPOLOGY_SH,
          TG_SEGMENT_NS: SEGMENT_NS,
          TG_NETNS_PREFIX: NETNS_PREFIX,
          TG_HOSTS_DIR: join(stackDir, 'hosts'),
          TG_HOSTS_RUN: join(stackDir, 'run'),
          TG_AUTHORIZED_KEYS: join(stackDir, 'id.pub'),
        },
      },
      // Not in `children` (killed on any failure): host.sh must get to tear the hosts down; host.stop or SIGTERM ends it.
      false,
    );
    const hostExit = new Promise((r) => host?.on('close', r));
    await Promise.race([
      waitFor('the host-side hosts', () => existsSync(join(stackDir, 'host.ready')), 300_000),
      hostExit.then(() => {
        throw new Error(`test/stack/host.sh ended: ${readFileSync(join(stackDir, 'host.log'), 'utf8')}`);
      }),
    ]);
    // Node's compile cache for the directors, as the other guest tests warm theirs: made in proxy1 (a host-side
    // container with the directors' paths, /opt/tiergate-release, and the guest's V8 flag, both part of the cache's
    // key) and laid into lb1 and lb2 before they boot, where root's commands (/tmp/node-compile-cache) and the
    // director's unit (its CacheDirectory) find it. The emulated CPU then skips compiling the modules; the roles
    // run unchanged.
    const proxy1 = (await readFile(join(stackDir, 'run/proxy1.pid'), 'utf8')).trim();
    await exec('nsenter', [
      '--target',
      proxy1,
      '--all',
      '--root',
      '--wd',
      'env',
      'NODE_COMPILE_CACHE=/var/tmp/tg-warm',
      '/opt/tiergate-release/node_modules/.bin/node',
      '--no-memory-protection-keys',
      '/opt/tiergate-release/packages/cli/bin/tiergate.js',
      'warm-cache',
    ]);
    const warm = join(stackDir, 'hosts/proxy1/root/var/tmp/tg-warm');
    for (const dest of ['seed/tmp/node-compile-cache', 'seed/var/cache/tiergate/director']) {
      await mkdir(join(stackDir, dest), { recursive: true });
      await exec('cp', ['-a', `${warm}/.`, join(stackDir, dest)]);
    }
    // The seed is laid over / with cp -a, modes included: /tmp must stay world-writable and sticky.
    await chmod(join(stackDir, 'seed/tmp'), 0o1777);
    try {
      run = await runInGuest({
        script: guestScript,
        timeoutMs: 2_400_000,
        memoryMb: 3072,
        files: { 'id.pub': await readFile(join(stackDir, 'id.pub')), 'seed-path': join(stackDir, 'seed') },
        uplink: { netns: SEGMENT_NS, tap: 'tap0' },
        alongside: deployAndDrill,
      });
    } catch (err) {
      setupError = err;
    }
    const t0 = steps.booted ?? 0;
    const timeline = Object.entries(steps)
      .map(([k, v]) => `+${Math.round((v - t0) / 1000)} s ${k}`)
      .join(', ');
    console.info(`stack: guest boot ${run?.bootMs} ms, total ${run?.totalMs} ms; ${timeline}; files in ${stackDir}`);
  }, 2_500_000);

  /** Ends the ssh connections kept open for reuse (Ansible's and the test's own), by their control sockets. */
  async function closeConnections(): Promise<void> {
    const sockets = [
      ...(await readdir(stackDir).catch(() => [] as string[])).filter((f) => f.startsWith('cm-')).map((f) => join(stackDir, f)),
      ...(await readdir(join(stackDir, 'cp')).catch(() => [] as string[])).map((f) => join(stackDir, 'cp', f)),
    ];
    for (const path of sockets) await exec('ssh', ['-o', `ControlPath=${path}`, '-O', 'exit', 'any'], { timeout: 10_000 }).catch(() => {});
  }

  afterAll(async () => {
    killChildren();
    await closeConnections();
    if (host !== undefined && host.exitCode === null) {
      const closed = new Promise((r) => host?.on('close', r));
      await writeFile(join(stackDir, 'host.stop'), '');
      await Promise.race([closed, sleep(60_000)]);
      if (host.exitCode === null) host.kill('SIGTERM');
      await Promise.race([closed, sleep(30_000)]);
    }
    await run?.[Symbol.asyncDispose]();
    if (process.env.TG_VM_KEEP !== '1' && stackDir !== '') await rm(stackDir, { recursive: true, force: true });
  }, 120_000);

  const ran = () => {
    const log = existsSync(join(stackDir, 'playbook.log')) ? readFileSync(join(stackDir, 'playbook.log'), 'utf8').slice(-6000) : '';
    expect(setupError, String(setupError)).toBeUndefined();
    expect(run?.alongsideError, `${run?.alongsideError}\nplaybook:\n${log}\nguest stderr:\n${run?.stderr}`).toBeUndefined();
  };

  it('ansible-playbook site.yml deploys every host: no failed task, every service of the roles running', async () => {
    ran();
    const log = await read('playbook.log');
    const recap = log.slice(log.indexOf('PLAY RECAP'));
    for (const h of Object.keys(HOSTS))
      expect(recap).toMatch(new RegExp(`^${h}\\s+: ok=\\d+\\s+changed=\\d+\\s+unreachable=0\\s+failed=0 `, 'm'));
    const services = await read('services.txt');
    const active = (h: string) => services.split(`== ${h}\n`)[1]?.split('\n').slice(0, 6);
    // is-active order: tiergate-director keepalived tiergate-realserver tiergate-proxy tiergate-app redis-server
    expect(active('lb1')?.slice(0, 2)).toEqual(['active', 'active']);
    expect(active('lb2')?.slice(0, 2)).toEqual(['active', 'active']);
    for (const p of ['proxy1', 'proxy2']) expect(active(p)?.slice(2, 4)).toEqual(['active', 'active']);
    for (const a of ['app1', 'app2']) expect(active(a)?.[4]).toBe('active');
    expect(active('redis1')?.[5]).toBe('active');
    // Every unit the roles start was started once: no restart handler ran right after a first start.
    const starts = (await read('starts.txt')).trim().split('\n').sort();
    expect(starts).toEqual(
      [
        'lb1 tiergate-director.service',
        'lb1 keepalived.service',
        'lb2 tiergate-director.service',
        'lb2 keepalived.service',
        'proxy1 tiergate-realserver.service',
        'proxy1 tiergate-proxy.service',
        'proxy2 tiergate-realserver.service',
        'proxy2 tiergate-proxy.service',
        'app1 tiergate-app.service',
        'app2 tiergate-app.service',
        'redis1 redis-server.service',
      ].sort(),
    );
    console.info(`playbook: ${Math.round(((steps.deployed ?? 0) - (steps.booted ?? 0)) / 1000)} s`);
  });

  it('a login through the VIP is seen on both app servers, and the client address reaches the app as X-Real-IP', async () => {
    ran();
    const base = between(await requests(), 'baseline', 'app-kill');
    expect(base.length).toBeGreaterThan(4);
    expect(base.filter((r) => r.error)).toEqual([]);
    expect(new Set(base.map((r) => r.instance))).toEqual(new Set(['app1', 'app2']));
    expect(new Set(base.map((r) => r.user))).toEqual(new Set(['alice']));
    // DR keeps the client's address as the TCP source at the proxy, which sets X-Real-IP; the app trusts the proxies.
    expect(new Set(base.map((r) => r.client))).toEqual(new Set([CLIENT]));
    console.info(`baseline: ${base.length} requests, 0 failed, served by ${[...new Set(base.map((r) => r.instance))].join(' and ')}`);
  });

  it('one trace per request reaches the collector host: proxy server span → app server span → Redis span', async () => {
    ran();
    const spans = JSON.parse(await read('spans.json')) as CollectedSpan[];
    const byTrace = Map.groupBy(spans, (s) => s.traceId);
    const complete = [...byTrace.values()].filter((trace) => {
      const server = trace.find((s) => s.scope === '@tiergate/proxy' && s.kind === 'SERVER' && s.attributes['url.path'] === '/');
      const app = trace.find((s) => s.kind === 'SERVER' && s.scope === '@opentelemetry/instrumentation-http');
      const redis = trace.find((s) => s.kind === 'CLIENT' && s.attributes['db.system.name'] === 'redis');
      return server !== undefined && app !== undefined && redis !== undefined && server.attributes['client.address'] === CLIENT;
    });
    // Requests go one after another, so each one's span starts within its own [sent, answered] interval (20 ms of
    // slack for the exporters' clock, performance.timeOrigin-based).
    // The baseline's requests up to 7 s before app1 is killed: the apps export their spans every 5 s, and what
    // app1 had not exported yet dies with it (kill -9).
    const base = between(await requests(), 'baseline', 'app-kill').filter((r) => r.t + r.ms < (steps['app-kill'] ?? 0) - 7_000);
    expect(base.length).toBeGreaterThan(4);
    const starts = complete.map((trace) => {
      const server = trace.find((s) => s.scope === '@tiergate/proxy' && s.kind === 'SERVER');
      return Number(BigInt(server?.startTimeUnixNano ?? '0') / 1_000_000n);
    });
    const within = (t: number, r: Req) => t >= r.t - 20 && t <= r.t + r.ms + 20;
    // Exactly one trace starts within each request's interval (the client sends one at a time, 50 ms apart).
    const perRequest = base.map((r) => starts.filter((t) => within(t, r)).length);
    console.info(
      `traces: ${spans.length} spans, ${complete.length} complete proxy → app → Redis traces; baseline: ${base.length} requests, ` +
        `traces per request: ${[...new Set(perRequest)].join(', ')}`,
    );
    expect(perRequest.filter((n) => n !== 1)).toEqual([]);
  });

  it('kill -9 of an app server: 0 failed requests (the proxies retry), the login session kept', async () => {
    ran();
    const during = between(await requests(), 'app-kill', 'redis-restart');
    console.info(`app kill: ${during.filter((r) => r.error).length} failed of ${during.length}`);
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((r) => r.error)).toEqual([]);
    expect(new Set(during.map((r) => r.user))).toEqual(new Set(['alice']));
    expect(await read('app1-pid-before.txt')).not.toBe('');
  });

  it('restart of redis1: the session survives and the apps serve it again without a restart', async () => {
    ran();
    const during = between(await requests(), 'redis-restart', 'proxy-kill');
    const failed = during.filter((r) => r.error);
    console.info(`redis restart: ${failed.length} failed of ${during.length} (${[...new Set(failed.map((f) => f.error))].join('; ')})`);
    const after = during.filter((r) => r.t > (steps['redis-restarted'] ?? 0) + 5_000);
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((r) => r.error)).toEqual([]);
    expect(new Set(after.map((r) => r.user))).toEqual(new Set(['alice']));
    const pids = JSON.parse(await read('apps-pids.json')) as { before: string[]; after: string[] };
    expect(pids.after).toEqual(pids.before);
  });

  it('kill -9 of a proxy node: failures only within the director check window; proxy1 quiesced, restarted, back', async () => {
    ran();
    const during = between(await requests(), 'proxy-kill', 'rolling');
    const failed = during.filter((r) => r.error);
    const killed = steps['proxy-kill'] ?? 0;
    const quiesced = ipvs.find((s) => s.t > killed && new RegExp(`${HOSTS.proxy1}:80\\s+Route\\s+0\\s`).test(s.text));
    console.info(
      `proxy kill: ${failed.length} failed of ${during.length} (${[...new Set(failed.map((f) => f.error))].join('; ')}); quiesced after ${quiesced ? quiesced.t - killed : 'never'} ms, back after ${(steps['proxy-back'] ?? 0) - killed} ms`,
    );
    expect(quiesced, 'the director never set proxy1 to weight 0').toBeDefined();
    // Failures only until the director quiesced proxy1 (the snapshot arrives up to one watch period later).
    for (const f of failed) expect(f.t).toBeLessThan((quiesced as Snapshot).t + 1_500);
    const back = between(await requests(), 'proxy-back', 'rolling');
    expect(back.length).toBeGreaterThan(0);
    expect(back.filter((r) => r.error)).toEqual([]);
  });

  /** Times (ms) of the journal lines of HOST matching PATTERN (journalctl -o short-iso-precise, UTC). */
  const events = async (h: Host, pattern: RegExp) =>
    (await read(`journal-${h}.txt`))
      .split('\n')
      .filter((l) => pattern.test(l))
      .map((l) => Date.parse((l.split(' ')[0] ?? '').replace(/\+0000$/, 'Z')));

  it('rolling restart of proxy1 then proxy2 (the playbook, L4-aware both ways): each quiesced by lb1 before its listener closes, a clean exit, routed again before the next stops; 0 failed requests', async () => {
    ran();
    const during = between(await requests(), 'rolling', 'redeploy');
    const { rc } = JSON.parse(await read('rolling.json')) as { rc: number };
    const log = await read('rolling.log');
    expect(rc, log.slice(-4000)).toBe(0);
    // The handler waited on lb1 for each node, proxy1's wait before proxy2's restart.
    const at = (re: RegExp) => log.search(re);
    // (`ok: [proxy1 -> lb1(10.99.0.2)] => (item=lb1)`: the delegated host and its address, per loop item.)
    const waits = ['proxy1', 'proxy2'].map((p) => at(new RegExp(`^ok: \\[${p} -> lb1(\\([^)]*\\))?\\] => \\(item=lb1\\)`, 'm')));
    expect(
      waits.every((i) => i > 0),
      log.slice(-4000),
    ).toBe(true);
    expect(at(/^changed: \[proxy2\]/m)).toBeGreaterThan(waits[0] ?? -1);
    // Never both at weight 0 in lb1's table: one node was always routed to.
    const routed = (h: string) => new RegExp(`${h.replaceAll('.', '\\.')}:80\\s+Route\\s+[1-9]`);
    const bothOut = ipvs.filter(
      (x) => x.t > (steps.rolling ?? 0) && x.t < (steps.rolled ?? 0) && [HOSTS.proxy1, HOSTS.proxy2].every((h) => !routed(h).test(x.text)),
    );
    expect(bothOut.map((x) => x.text)).toEqual([]);
    const order: string[] = [];
    for (const p of ['proxy1', 'proxy2'] as const) {
      // The proxies run on this machine's kernel: their journal's and their log's clock is the test's own. Each
      // node's drain is the first after the play began (proxy2's restart comes after proxy1's wait).
      const from = steps.rolling ?? Number.NaN;
      const logged = (await read(`journal-${p}.txt`)).split('\n').flatMap((l) => {
        if (!l.includes(': {"')) return [];
        try {
          return [JSON.parse(l.slice(l.indexOf(': {"') + 2)) as { time: number | string; msg?: string; request_id?: string }];
        } catch {
          return []; // not one whole JSON record
        }
      });
      // When its listener closed (the drain delay over), and when it last got a request (its access log).
      const closed = logged.find((x) => x.msg === 'draining' && Number(x.time) > from)?.time as number | undefined;
      const served = logged.filter((x) => x.request_id !== undefined).map((x) => Date.parse(String(x.time)));
      const last = Math.max(...served.filter((t) => t < (closed ?? Number.NaN)));
      // lb1's table showed it at weight 0 after the play began (snapshots once a ssh round, ≈ 2 s under TCG).
      const seen = ipvs.find((x) => x.t > from && new RegExp(`${HOSTS[p]}:80\\s+Route\\s+0\\s`).test(x.text))?.t;
      order.push(
        `${p}: last request ${(closed ?? Number.NaN) - last} ms before its listener closed (${(closed ?? Number.NaN) - from} ms after the play began), weight 0 seen ${(seen ?? Number.NaN) - from} ms after it`,
      );
      expect(closed, `${p}: no "draining" in its log`).toBeDefined();
      expect(seen, `${p}: never at weight 0 in lb1's table`).toBeDefined();
      // Requests went on at several a second, a new connection each, and none reached this node for a second
      // before it closed: IPVS no longer scheduled it (quiesced). (Without, the next connection sent to it after
      // the close would be refused: counted below.)
      expect((closed as number) - last, p).toBeGreaterThan(1_000);
      expect(during.filter((r) => r.t > (closed as number) - 1_000 && r.t < (closed as number)).length, p).toBeGreaterThan(2);
      // A clean exit: systemd saw it stop successfully, neither a failing status nor a crash, since the drill began.
      expect((await events(p, /tiergate-proxy\.service: Deactivated successfully/)).filter((t) => t > from).length, p).toBe(1);
      expect(
        await events(p, /tiergate-proxy\.service: (Main process exited|Failed with result)/).then((ts) => ts.filter((t) => t > from)),
      ).toEqual([]);
    }
    console.info(`rolling restart: ${during.filter((r) => r.error).length} failed of ${during.length}; ${order.join('; ')}`);
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((r) => r.error)).toEqual([]);
  });

  it('a re-run of the playbook with a changed tiergate.yaml reloads the proxies (the handlers act): new pool, same PIDs, 0 failed', async () => {
    ran();
    const r = JSON.parse(await read('redeploy.json')) as { rc: number; before: string[]; after: string[]; algorithms: string[] };
    const log = await read('redeploy.log');
    const recap = log.slice(log.indexOf('PLAY RECAP'));
    const from = steps.redeploy ?? Number.NaN;
    const to = steps.redeployed ?? Number.NaN;
    const within = (ts: number[]) => ts.filter((t) => t >= from && t <= to).length;
    // `systemctl reload` returns once the proxy has applied the new file, which it logs ("config reloaded", after
    // reading the file in a child, `proxy reload-read`): before the playbook returned.
    const seen: string[] = [];
    for (const p of ['proxy1', 'proxy2'] as const) {
      // systemd's own lines about the units and the proxy's log line (once the new file is applied).
      const reloaded = {
        proxy: within(await events(p, /systemd\[1\]: Reloaded tiergate-proxy\.service/)),
        proxyApplied: within(await events(p, /"msg":"config reloaded"/)),
        realserver: within(await events(p, /systemd\[1\]: Reloaded tiergate-realserver\.service/)),
        restarts: within(await events(p, /systemd\[1\]: (Stopping|Started) tiergate-proxy\.service/)),
      };
      seen.push(`${p} ${JSON.stringify(reloaded)}`);
      expect(reloaded, p).toEqual({ proxy: 1, proxyApplied: 1, realserver: 1, restarts: 0 });
    }
    const during = between(await requests(), 'redeploy', 'drain');
    console.info(
      `re-deploy of the proxies: ${Math.round((to - from) / 1000)} s; ${seen.join('; ')}; pool algorithm now ${r.algorithms.join(', ')}; ` +
        `${during.filter((x) => x.error).length} failed of ${during.length}`,
    );
    expect(r.rc, log.slice(-4000)).toBe(0);
    for (const p of ['proxy1', 'proxy2'])
      expect(recap).toMatch(new RegExp(`^${p}\\s+: ok=\\d+\\s+changed=[1-9]\\d*\\s+unreachable=0\\s+failed=0 `, 'm'));
    // A reload: the same process, now balancing with the new algorithm.
    expect(r.after).toEqual(r.before);
    expect(r.algorithms).toEqual(['round_robin', 'round_robin']);
    // A reload swaps the pools between requests: nothing in flight is dropped.
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((x) => x.error)).toEqual([]);
  });

  it("a drain by hand (lb1's daemon, POST /drain) sets weight 0 in lb1's kernel and undrain restores it; 0 failed requests", async () => {
    ran();
    const drained = JSON.parse(await read('drain.json')) as {
      service: string;
      server: string;
      phase: string;
      timedOut: boolean;
      waitedMs: number;
    };
    expect(drained).toMatchObject({ service: `tcp/${VIP}:80`, server: `${HOSTS.proxy2}:80`, phase: 'drained' });
    expect(await read('weight-drained.txt')).toBe('0');
    expect(JSON.parse(await read('undrain.json'))).toMatchObject({
      restored: true,
      service: `tcp/${VIP}:80`,
      server: `${HOSTS.proxy2}:80`,
    });
    const [weight, afterMs] = (await read('weight-undrained.txt')).split(' ');
    const during = between(await requests(), 'drain', 'ha-status');
    console.info(
      `drain by hand: drained in ${drained.waitedMs} ms (timed out: ${drained.timedOut}), weight 0 in the kernel; weight 1 again ${afterMs} ms after undrain returned; ${during.filter((r) => r.error).length} failed of ${during.length}`,
    );
    expect(weight).toBe('1');
    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((r) => r.error)).toEqual([]);
  });

  it('before the failover: lb1 MASTER with the VIP and the master sync daemon, lb2 BACKUP with the backup one', async () => {
    ran();
    const held = async (h: 'lb1' | 'lb2') => (await read(`vip-${h}-before.txt`)).includes(` ${VIP}/32 `);
    expect((await read('vrrp-lb1-before.txt')).trim()).toBe('MASTER VI_1 150');
    expect(await held('lb1')).toBe(true);
    // keepalived forks one notify script per transition, unordered: if lb2 passed through MASTER at start-up, its
    // MASTER record can outlive the BACKUP one (status then flags it as stale: no VIP here). Either way lb2 does not
    // hold the VIP.
    expect((await read('vrrp-lb2-before.txt')).trim()).toMatch(/^(BACKUP|MASTER) VI_1 100$/);
    expect(await held('lb2')).toBe(false);
    // The kernel's own view: one daemon each, of that role.
    expect((await read('daemons-lb1-before.txt')).trim()).toMatch(/^master sync daemon \(mcast=eth0, syncid=1[,)][^\n]*$/);
    expect((await read('daemons-lb2-before.txt')).trim()).toMatch(/^backup sync daemon \(mcast=eth0, syncid=1[,)][^\n]*$/);
    // No request failed from then until lb1 was stopped (the download and the WebSocket opened meanwhile).
    const quiet = between(await requests(), 'ha-status', 'failover');
    expect(quiet.length).toBeGreaterThan(0);
    expect(quiet.filter((r) => r.error)).toEqual([]);
  });

  it('failover of the director pair: lb2 holds the VIP within 3 s; the download and the WebSocket opened through lb1 finish', async () => {
    ran();
    const f = JSON.parse(await read('failover.json')) as {
      download: {
        localPort: number;
        bytes: number;
        expected: number;
        mismatches: number;
        maxGapMs: number;
        status: number;
        complete: boolean;
        error?: string;
        end: number;
      };
      websocket: {
        localPort: number;
        sent: number;
        answered: number;
        wrong: number;
        maxGapMs: number;
        closeCode: number;
        error?: string;
        end: number;
      };
    };
    const stop = steps.failover ?? 0;
    const held = steps['lb2-holds'] ?? 0;
    // The takeover on the guest's own clock (lb1 and lb2 share it): systemd on lb1 starts stopping keepalived → lb2's
    // keepalived enters MASTER (and adds the VIP). The host's view (an ssh poll of lb2) is coarser.
    const lb1Stop = (await events('lb1', /systemd\[1\]: Stopping keepalived\.service/)).at(-1) ?? Number.NaN;
    const lb2Master = (await events('lb2', /\(VI_1\) Entering MASTER STATE/)).find((t) => t >= lb1Stop) ?? Number.NaN;
    const takeover = lb2Master - lb1Stop;
    // Before the stop, lb1 held the VIP throughout (no flapping under load): lb2 never became MASTER in the drills.
    // (After lb1 became MASTER for good: at start-up lb2's first adverts may race lb1's under emulation.)
    const lb1Master = (await events('lb1', /\(VI_1\) Entering MASTER STATE/)).filter((t) => t < lb1Stop).at(-1) ?? Number.NaN;
    const lb2EarlyMasters = (await events('lb2', /\(VI_1\) Entering MASTER STATE/)).filter((t) => t > lb1Master && t < lb1Stop);
    const shorts = between(await requests(), 'failover', 'failover-end');
    const failed = shorts.filter((r) => r.error);
    console.info(
      `failover: lb2 MASTER ${takeover} ms after lb1 began stopping keepalived (guest clock); seen from the host ${held - stop} ms after the stop was sent (the stop returned after ${(steps['lb1-stopped'] ?? 0) - stop} ms); ` +
        `download ${f.download.bytes}/${f.download.expected} bytes, longest pause ${f.download.maxGapMs} ms; ` +
        `WebSocket ${f.websocket.answered}/${f.websocket.sent} echoes, longest pause ${f.websocket.maxGapMs} ms; ` +
        `short requests: ${failed.length} failed of ${shorts.length} (${[...new Set(failed.map((r) => r.error))].join('; ')})`,
    );
    expect(lb2EarlyMasters).toEqual([]);
    expect(takeover).toBeGreaterThanOrEqual(0);
    expect(takeover).toBeLessThanOrEqual(3_000);
    // Connection sync: lb2 had both long-lived connections in its table before lb1 stopped (the master sync daemon
    // sent them); they then finish through lb2 (below).
    const conns = await read('lb2-conns-before.txt');
    for (const port of [f.download.localPort, f.websocket.localPort])
      expect(conns, `port ${port}`).toMatch(new RegExp(`^TCP\\s+\\S+\\s+ESTABLISHED\\s+${CLIENT}:${port}\\s+${VIP}:80\\s+`, 'm'));
    expect(f.download).toMatchObject({ status: 200, bytes: f.download.expected, mismatches: 0, complete: true });
    expect(f.download.error).toBeUndefined();
    expect(f.download.end).toBeGreaterThan(held);
    expect(f.websocket).toMatchObject({ wrong: 0, closeCode: 1000 });
    expect(f.websocket.error).toBeUndefined();
    expect(f.websocket.answered).toBe(f.websocket.sent);
    expect(f.websocket.end).toBeGreaterThan(held + 4_000);
    // Short requests (a new connection each) may fail only while the VIP moves.
    for (const r of failed) expect(r.t).toBeLessThan(held + 2_000);
  });

  it('after the failover: lb2 switched its sync daemon to master (kernel, journal) and recorded VRRP MASTER', async () => {
    ran();
    const lb1Stop = (await events('lb1', /systemd\[1\]: Stopping keepalived\.service/)).at(-1) ?? Number.NaN;
    const lb2Master = (await events('lb2', /\(VI_1\) Entering MASTER STATE/)).find((t) => t >= lb1Stop) ?? Number.NaN;
    const switched = (await events('lb2', /sync daemon master on eth0 \(id 1\) \(holds the VIP: VRRP MASTER\)/)).find((t) => t >= lb1Stop);
    console.info(
      `failover: lb2's sync daemon master ${(switched ?? Number.NaN) - lb2Master} ms after its keepalived entered MASTER (guest clock)`,
    );
    expect(switched, "lb2's director never logged the switch to master").toBeDefined();
    // ipvsadm -L --daemon: one line per running daemon; the backup one is gone.
    expect((await read('daemons-lb2-after.txt')).trim()).toMatch(/^master sync daemon \(mcast=eth0, syncid=1[,)][^\n]*$/);
    // keepalived's notify script: `MASTER VI_1 100` (state, instance, priority), what `director status` shows.
    expect((await read('vrrp-lb2-after.txt')).trim()).toMatch(/^MASTER VI_1 /);
  });
});

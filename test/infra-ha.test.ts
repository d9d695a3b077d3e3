import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig } from '@tiergate/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The two-director HA pair of the classic inventory, rendered by the real playbook (`--tags render` into a temp
 * dir per host, local connection: nothing else written, no service touched, no address contacted): lb1 is the
 * VRRP MASTER, lb2 the BACKUP, both run `tiergate director` on the same tiergate.yaml with a sync daemon, the
 * real keepalived accepts both files (`keepalived --config-test`), and keepalived's notify script records the
 * state where `tiergate director status` reads it. The harness is the minimum of test/infra-ansible.test.ts's.
 * The failover itself runs with the real keepalived and IPVS on the deployed pair in test/stack-vm.test.ts.
 */

const ROOT = resolve(import.meta.dirname, '..');
const INFRA = join(ROOT, 'infra');
const CONFIG = '/etc/tiergate/tiergate.yaml';
const NOTIFY = '/usr/local/lib/tiergate/vrrp-notify';
const CALLBACKS = join(ROOT, 'test/ansible/callback_plugins');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`: every run here is bounded). */
function run(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: INFRA, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 180_000);
    child.on('error', (err) => fail(new Error(`cannot run ${cmd}: ${err.message} (Debian packages: ansible-core, keepalived)`)));
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

const show = (r: Run) => `exit ${r.code}\n--- stdout\n${r.stdout.slice(-6000)}\n--- stderr\n${r.stderr.slice(-3000)}`;

let work: string;
let render: Run;
const rendered = (host: string, path: string) => readFileSync(join(work, 'classic', host, path), 'utf8');

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tiergate-infra-ha-'));
  const home = join(work, 'ansible-home');
  const varsFile = join(work, 'vars.json');
  writeFileSync(
    varsFile,
    JSON.stringify({
      tiergate_home: ROOT,
      ansible_connection: 'local',
      ansible_python_interpreter: '{{ ansible_playbook_python }}',
      tiergate_root: `${join(work, 'classic')}/{{ inventory_hostname }}`,
      // 192.168.10.x's eth0 is not this machine's; the files are checked below with this machine's interface.
      keepalived_config_test: false,
      tiergate_vrrp_state_dir: join(work, 'run/{{ inventory_hostname }}'),
      // Given here so the inventory's password lookup writes no credentials/ into the checkout.
      tiergate_session_secret: 'classic-test-session-secret-0123456789',
      tiergate_redis_password: 'classic-test-redis-password-0123456789',
    }),
  );
  render = await run(
    'ansible-playbook',
    ['-i', 'inventories/classic/hosts.yml', 'site.yml', '--tags', 'render', '-e', `@${varsFile}`, '--limit', 'directors'],
    {
      env: {
        ...process.env,
        ANSIBLE_CONFIG: join(INFRA, 'ansible.cfg'),
        ANSIBLE_HOME: home,
        ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
        ANSIBLE_REMOTE_TEMP: join(home, 'remote-tmp'),
        ANSIBLE_GATHERING: 'explicit',
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_RETRY_FILES_ENABLED: '0',
        ANSIBLE_CALLBACK_PLUGINS: CALLBACKS,
        ANSIBLE_STDOUT_CALLBACK: 'tiergate_json',
      },
    },
  );
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The `key value` lines of the vrrp_instance block. */
function instance(conf: string): Map<string, string> {
  const block = /^vrrp_instance VI_1 \{\n([\s\S]*?)^\}/m.exec(conf)?.[1] ?? '';
  return new Map(block.split('\n').flatMap((l) => (/^ {2}(\w+) (.+)$/.exec(l) ? [[RegExp.$1, RegExp.$2] as [string, string]] : [])));
}

describe('infra: two directors in HA (classic inventory, rendered)', () => {
  it('the playbook renders both directors', () => {
    expect(render.code, show(render)).toBe(0);
    const stats = JSON.parse(render.stdout.slice(render.stdout.indexOf('{'))).stats as Record<string, { failures: number }>;
    expect(Object.keys(stats).sort()).toEqual(['lb1', 'lb2']);
  });

  it('lb1 is the VRRP MASTER (priority 150), lb2 the BACKUP (100), one virtual router, adverts every second, the VIP', () => {
    const lb1 = instance(rendered('lb1', 'etc/keepalived/keepalived.conf'));
    const lb2 = instance(rendered('lb2', 'etc/keepalived/keepalived.conf'));
    expect(lb1.get('state')).toBe('MASTER');
    expect(lb2.get('state')).toBe('BACKUP');
    expect(Number(lb1.get('priority'))).toBeGreaterThan(Number(lb2.get('priority')));
    expect([lb1.get('priority'), lb2.get('priority')]).toEqual(['150', '100']);
    for (const i of [lb1, lb2]) {
      expect(i.get('virtual_router_id')).toBe('51');
      expect(i.get('advert_int')).toBe('1');
      expect(i.get('interface')).toBe('eth0');
      expect(i.get('notify')).toBe(NOTIFY);
    }
    for (const host of ['lb1', 'lb2']) {
      const conf = rendered(host, 'etc/keepalived/keepalived.conf');
      expect(conf).toContain('    192.168.10.100/32 dev eth0\n');
      expect(conf).toContain(`router_id ${host}\n`);
      // keepalived moves the VIP only: no IPVS of its own (two writers of one table), no sync daemon of its own.
      expect(conf).not.toMatch(/^\s*(virtual_server|lvs_sync_daemon)\b/m);
    }
  });

  it('both run `tiergate director` on the same tiergate.yaml, each its own entry, with the sync daemon following VRRP', () => {
    const text = rendered('lb1', CONFIG);
    expect(rendered('lb2', CONFIG)).toBe(text);
    const config = parseConfig(text);
    expect(config.directors.map((d) => [d.name, d.sync_daemon?.state, d.sync_daemon?.sync_id, d.vips])).toEqual([
      ['lb1', 'master', 1, []],
      ['lb2', 'backup', 1, []],
    ]);
    for (const host of ['lb1', 'lb2'])
      expect(rendered(host, 'etc/systemd/system/tiergate-director.service')).toMatch(
        new RegExp(`^ExecStart=\\S+ \\S+ director run -c ${CONFIG} --name ${host}$`, 'm'),
      );
  });

  it('the real keepalived accepts both files (--config-test, with this machine’s interface for eth0)', async () => {
    // keepalived checks that the interface exists and can multicast (VRRP adverts); it does not look at scripts
    // (the QEMU drill runs the notify script under the real keepalived).
    const iface = readdirSync('/sys/class/net').find(
      (n) =>
        n !== 'lo' &&
        readFileSync(`/sys/class/net/${n}/operstate`, 'utf8').trim() === 'up' &&
        (Number(readFileSync(`/sys/class/net/${n}/flags`, 'utf8')) & 0x1000) !== 0,
    );
    expect(iface, 'keepalived --config-test needs an interface that is up and multicast-capable').toBeTruthy();
    for (const host of ['lb1', 'lb2']) {
      const file = join(work, `keepalived-${host}.conf`);
      writeFileSync(file, rendered(host, 'etc/keepalived/keepalived.conf').replaceAll(' eth0', ` ${iface}`));
      const r = await run('keepalived', ['--config-test', '-f', file]);
      expect(r.code, `${host}\n${show(r)}`).toBe(0);
    }
  });

  it("keepalived's notify script records each transition where `tiergate director status` reads it", async () => {
    for (const [host, state, prio] of [
      ['lb1', 'MASTER', '150'],
      ['lb2', 'BACKUP', '100'],
      ['lb2', 'MASTER', '100'],
    ] as const) {
      const r = await run('sh', [join(work, 'classic', host, NOTIFY), 'INSTANCE', 'VI_1', state, prio]);
      expect(r.code, show(r)).toBe(0);
      expect(readFileSync(join(work, 'run', host, `vrrp-${host}.state`), 'utf8')).toBe(`${state} VI_1 ${prio}\n`);
    }
    const script = rendered('lb1', NOTIFY);
    expect(script).toMatch(/^#!\/bin\/sh\n/);
    // The default of `director status --vrrp-state-file` is /run/tiergate/vrrp-<name>.state.
    expect(script).toContain('"$dir/vrrp-lb1.state"');
  });
});

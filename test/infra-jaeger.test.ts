import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/**
 * infra/roles/jaeger with Debian's ansible-core: the rendered config and unit (render mode, `--tags render
 * -e tiergate_root=<temp dir>`, the classic inventory limited to jaeger1), the role's refusal of an unverified
 * download, and the binary install's own tasks run against a temp directory on this machine (local connection)
 * with a stand-in release tarball: from the control machine's file, and from a `file://` URL whose checksum is
 * checked. Nothing outside the temp dir is written and no network address is contacted.
 */

const INFRA = resolve(import.meta.dirname, '../infra');
let work: string;

interface Run {
  code: number | null;
  output: string;
}

function run(args: readonly string[], timeoutMs = 120_000): Promise<Run> {
  const home = join(work, 'ansible-home');
  const env = {
    ...process.env,
    ANSIBLE_CONFIG: join(INFRA, 'ansible.cfg'),
    ANSIBLE_HOME: home,
    ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
    ANSIBLE_REMOTE_TEMP: join(home, 'remote-tmp'),
    ANSIBLE_GATHERING: 'explicit',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_RETRY_FILES_ENABLED: '0',
  };
  return new Promise((done, fail) => {
    const child = spawn('ansible-playbook', args, { cwd: INFRA, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => fail(new Error(`cannot run ansible-playbook (apt-get install ansible-core): ${err.message}`)));
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, output });
    });
  });
}

/** site.yml in render mode for jaeger1 of the classic inventory, into `<work>/<name>`. */
function render(name: string, vars: Record<string, unknown> = {}): Promise<Run> {
  const varsFile = join(work, `${name}-vars.json`);
  writeFileSync(varsFile, JSON.stringify({ tiergate_root: join(work, name), ansible_connection: 'local', ...vars }));
  return run(['-i', 'inventories/classic/hosts.yml', 'site.yml', '--tags', 'render', '--limit', 'jaeger1', '-e', `@${varsFile}`]);
}

const rendered = (name: string, path: string) => readFileSync(join(work, name, path), 'utf8');

beforeAll(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'tg-infra-jaeger-')));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the jaeger role, rendered', () => {
  it('config: OTLP receivers on jaeger_listen_address, the UI on loopback by default or on the management address named', async () => {
    const [byDefault, named] = await Promise.all([render('default'), render('named', { jaeger_ui_address: '10.9.0.40' })]);
    expect(byDefault.code, byDefault.output.slice(-4000)).toBe(0);
    expect(named.code, named.output.slice(-4000)).toBe(0);
    const config = parse(rendered('default', 'etc/jaeger/config.yaml'));
    expect(config.receivers.otlp.protocols).toEqual({ grpc: { endpoint: '0.0.0.0:4317' }, http: { endpoint: '0.0.0.0:4318' } });
    expect(config.extensions.jaeger_query.http.endpoint).toBe('127.0.0.1:16686');
    expect(config.extensions.healthcheckv2.http.endpoint).toBe('127.0.0.1:13133');
    expect(config.extensions.jaeger_storage.backends.tiergate_traces).toEqual({ memory: { max_traces: 100000 } });
    expect(config.service.pipelines.traces).toEqual({ receivers: ['otlp'], processors: ['batch'], exporters: ['jaeger_storage_exporter'] });
    expect(parse(rendered('named', 'etc/jaeger/config.yaml')).extensions.jaeger_query.http.endpoint).toBe('10.9.0.40:16686');
  });

  it('unit: the release binary as the unprivileged jaeger user, on the rendered config, hardened', async () => {
    const unit = rendered('default', 'etc/systemd/system/jaeger.service');
    for (const line of [
      'User=jaeger',
      'Group=jaeger',
      'ExecStart=/opt/jaeger/current/jaeger --config /etc/jaeger/config.yaml',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/jaeger',
      'Restart=on-failure',
    ])
      expect(unit.split('\n')).toContain(line);
    expect(unit).not.toContain('podman');
  });

  it('refuses jaeger_archive_url without a sha256 checksum', async () => {
    const r = await render('unverified', { jaeger_archive_url: 'https://mirror.example/jaeger.tar.gz' });
    expect(r.code).not.toBe(0);
    expect(r.output).toContain("jaeger_archive_url needs jaeger_archive_checksum: 'sha256:<64 hex digits>'");
    const ok = await render('verified', {
      jaeger_archive_url: 'https://mirror.example/jaeger.tar.gz',
      jaeger_archive_checksum: `sha256:${'a'.repeat(64)}`,
    });
    expect(ok.code, ok.output.slice(-4000)).toBe(0);
  });
});

describe("the jaeger role's binary install (its tasks, on this machine, in a temp dir)", () => {
  let tarball: string;
  let sha256: string;

  beforeAll(() => {
    // A stand-in release: jaeger-2.17.0-linux-amd64/jaeger, as the real tarball lays it out.
    const src = join(work, 'release');
    mkdirSync(join(src, 'jaeger-2.17.0-linux-amd64'), { recursive: true });
    writeFileSync(join(src, 'jaeger-2.17.0-linux-amd64/jaeger'), '#!/bin/sh\necho stand-in\n');
    chmodSync(join(src, 'jaeger-2.17.0-linux-amd64/jaeger'), 0o755);
    tarball = join(work, 'jaeger-2.17.0-linux-amd64.tar.gz');
    execFileSync('tar', ['-czf', tarball, '-C', src, 'jaeger-2.17.0-linux-amd64']);
    sha256 = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  });

  /** A play on localhost that includes the role's install-binary.yml with `vars`, installing under `<work>/<name>`. */
  function install(name: string, vars: Record<string, string>): Promise<Run> {
    const prefix = join(work, name, 'opt/jaeger');
    const play = [
      {
        hosts: 'localhost',
        connection: 'local',
        gather_facts: false,
        vars: { jaeger_version: '2.17.0', jaeger_arch: 'amd64', jaeger_prefix: prefix, jaeger_archive_url: '', ...vars },
        tasks: [{ 'ansible.builtin.include_tasks': join(INFRA, 'roles/jaeger/tasks/install-binary.yml') }],
        handlers: [{ name: 'restart jaeger', 'ansible.builtin.debug': { msg: 'restart' } }],
      },
    ];
    const file = join(work, `${name}-play.json`);
    writeFileSync(file, JSON.stringify(play));
    return run(['-i', 'localhost,', file]);
  }

  it('from the control machine (jaeger_archive_src, the default): copied, unpacked, current → the release', async () => {
    const r = await install('from-src', { jaeger_archive_src: tarball });
    expect(r.code, r.output.slice(-4000)).toBe(0);
    expect(realpathSync(join(work, 'from-src/opt/jaeger/current'))).toBe(join(work, 'from-src/opt/jaeger/2.17.0'));
    expect(readFileSync(join(work, 'from-src/opt/jaeger/current/jaeger'), 'utf8')).toContain('stand-in');
    const missing = await install('missing-src', { jaeger_archive_src: join(work, 'nowhere.tar.gz') });
    expect(missing.code).not.toBe(0);
    expect(missing.output).toContain('nowhere.tar.gz is missing on the control machine');
  });

  it('from jaeger_archive_url: installed when the checksum matches, refused when it does not', async () => {
    const url = `file://${tarball}`;
    const good = await install('from-url', { jaeger_archive_url: url, jaeger_archive_checksum: `sha256:${sha256}` });
    expect(good.code, good.output.slice(-4000)).toBe(0);
    expect(existsSync(join(work, 'from-url/opt/jaeger/current/jaeger'))).toBe(true);
    const bad = await install('bad-sum', { jaeger_archive_url: url, jaeger_archive_checksum: `sha256:${'0'.repeat(64)}` });
    expect(bad.code).not.toBe(0);
    expect(bad.output).toMatch(/checksum/i);
    expect(existsSync(join(work, 'bad-sum/opt/jaeger/current'))).toBe(false);
  });
});

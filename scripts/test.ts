/**
 * `npm test`: the whole check, in the order a failure is cheapest to read.
 *   0. the Debian packages of scripts/system-packages.txt: installed here when missing and this is root on Debian
 *      (as `tiergate up` does for redis-server), else one line with the `apt-get install` command and exit 1;
 *   1. lint (Biome) and the import-graph rule;
 *   2. turbo: `typecheck` and `test` of every package (cached by turbo where inputs are unchanged);
 *   3. the cross-package suites in test/ (real processes, real Redis, the QEMU guest with real IPVS);
 *   4. one closing line "N passed, N failed" summed over every vitest run.
 * Any failure exits non-zero. Nothing is skipped: a missing prerequisite fails the run.
 *
 * test/stack-vm.test.ts (the playbook onto the whole topology, then the drills) runs beside 1–3 from the start, in a
 * vitest of its own: most of its ~16 minutes are one QEMU thread emulating the directors' CPU, which would otherwise
 * leave the second core idle while every other suite waits (vitest runs one test file at a time on 2 cores). Its
 * drills count requests against the directors' check windows, which an emulated CPU starved by the other suites
 * would stretch (a rolling restart's margin fell from ~2.5 to 0.8 s under a concurrent benchmark): so everything
 * else runs at nice 10, and gets what the stack leaves. Its output is printed when it ends; a failure of 1–3 stops it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { installCommand, missingPackages, readSystemPackages } from './system-packages.ts';

const root = resolve(import.meta.dirname, '..');
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1', FORCE_COLOR: process.env.FORCE_COLOR ?? '0' };
const RESULTS = '.vitest-results.json';
const STACK_TEST = 'test/stack-vm.test.ts';
const STACK_RESULTS = '.vitest-results-stack.json';
/** The stack suite's vitest (its own process group: QEMU and the test's helpers go with it) and its log. */
let stack: { child: ChildProcess; log: string; exit: Promise<number> } | undefined;

/** Ends the stack suite's process group, if it still runs (host.sh, in a group of its own, tears the hosts down once its parent is gone). */
function stopStack(): void {
  const pid = stack?.child.pid;
  if (pid !== undefined && stack?.child.exitCode === null && stack.child.signalCode === null) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
}
process.on('exit', stopStack);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    stopStack();
    process.exit(130);
  });

function run(step: string, cmd: string, args: string[]): void {
  console.log(`\n=== ${step}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    stopStack();
    summarize();
    console.error(
      `\n${step} failed (exit ${r.status ?? r.signal})${stack ? `; ${STACK_TEST} stopped (its output so far: ${stack.log})` : ''}`,
    );
    process.exit(r.status || 1);
  }
}

function resultFiles(): string[] {
  const files = [join(root, RESULTS), join(root, STACK_RESULTS)];
  for (const p of readdirSync(join(root, 'packages'))) files.push(join(root, 'packages', p, RESULTS));
  return files.filter((f) => existsSync(f));
}

function summarize(): void {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const f of resultFiles()) {
    const r = JSON.parse(readFileSync(f, 'utf8')) as {
      numPassedTests: number;
      numFailedTests: number;
      numPendingTests: number;
      numTodoTests: number;
    };
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
}

/** Installs the missing system packages as root on Debian; otherwise stops at once with the one command to run. */
function ensureSystemPackages(): void {
  const wanted = readSystemPackages().map((p) => p.name);
  const missing = missingPackages(wanted);
  if (missing?.length === 0) return;
  const isRoot = process.getuid?.() === 0;
  if (missing === undefined || !isRoot || !existsSync('/usr/bin/apt-get')) {
    const names = missing ?? wanted;
    const where = missing === undefined ? ' (this is not a Debian system: install the equivalents)' : '';
    console.error(
      `npm test needs Debian packages that are missing${where}; install them, then run npm test again:  ${installCommand(names, isRoot)}`,
    );
    process.exit(1);
  }
  console.log(`=== system packages: installing what is missing of scripts/system-packages.txt: ${missing.join(' ')}`);
  const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
  // Another apt run (a test, the user) may hold dpkg's lock: wait for it instead of failing at once.
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  for (const args of [
    [...lock, 'update', '-qq'],
    [...lock, 'install', '-y', '-qq', '--no-install-recommends', ...missing],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env: aptEnv });
    if (r.status !== 0) {
      console.error(`apt-get ${args.join(' ')} failed (exit ${r.status ?? r.signal}); run it by hand:  ${installCommand(missing, true)}`);
      process.exit(1);
    }
  }
  const still = missingPackages(missing) ?? [];
  if (still.length > 0) {
    console.error(`still missing after apt-get install: ${still.join(' ')}`);
    process.exit(1);
  }
}

ensureSystemPackages();
for (const f of [RESULTS, STACK_RESULTS]) rmSync(join(root, f), { force: true });
const bin = (name: string) => join(root, 'node_modules', '.bin', name);

const stackLog = join(mkdtempSync(join(tmpdir(), 'tg-test-')), 'stack-vm.log');
const fd = openSync(stackLog, 'w');
console.log(`\n=== ${STACK_TEST}: started beside the steps below; its output: ${stackLog}`);
const stackArgs = ['run', STACK_TEST, '--reporter=default', '--reporter=json', `--outputFile.json=${STACK_RESULTS}`];
const child = spawn(bin('vitest'), stackArgs, { cwd: root, env, stdio: ['ignore', fd, fd], detached: true });
closeSync(fd);
stack = { child, log: stackLog, exit: new Promise((r) => child.on('close', (code) => r(code ?? 1))) };
// This process and every step below (their children inherit it): the stack suite keeps the CPU it needs.
setPriority(10);

run('lint', bin('biome'), ['check', '.']);
run('import graph', process.execPath, ['scripts/check-imports.ts']);
run('k6 scripts typecheck', bin('tsc'), ['-p', 'loadtest/k6']);
run('packages', bin('turbo'), ['run', 'typecheck', 'test', '--concurrency=2', '--output-logs=new-only']);
const crossArgs = ['run', '--exclude', STACK_TEST, '--reporter=default', '--reporter=json', `--outputFile.json=${RESULTS}`];
run('cross-package tests', bin('vitest'), crossArgs);

console.log(`\n=== ${STACK_TEST} (started with the lint):`);
const stackCode = await stack.exit;
process.stdout.write(readFileSync(stackLog, 'utf8'));
if (stackCode !== 0) {
  summarize();
  console.error(`\n${STACK_TEST} failed (exit ${stackCode})`);
  process.exit(stackCode);
}
summarize();

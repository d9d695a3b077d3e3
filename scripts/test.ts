/**
 * `npm test`: the whole check, in the order a failure is cheapest to read.
 *   0. the Debian packages of scripts/system-packages.txt: installed here when missing and this is root on Debian
 *      (as `tiergate up` does for redis-server), else one line with the `apt-get install` command and exit 1;
 *   1. lint (Biome) and the import-graph rule;
 *   2. turbo: `typecheck` and `test` of every package (cached by turbo where inputs are unchanged);
 *   3. the cross-package suites in test/ (real processes, real Redis, the QEMU guest with real IPVS);
 *   4. one closing line "N passed, N failed" summed over every vitest run.
 * Any failure exits non-zero. Nothing is skipped: a missing prerequisite fails the run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { installCommand, missingPackages, readSystemPackages } from './system-packages.ts';

const root = resolve(import.meta.dirname, '..');
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1', FORCE_COLOR: process.env.FORCE_COLOR ?? '0' };
const RESULTS = '.vitest-results.json';

function run(step: string, cmd: string, args: string[]): void {
  console.log(`\n=== ${step}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    summarize();
    console.error(`\n${step} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

function resultFiles(): string[] {
  const files = [join(root, RESULTS)];
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
rmSync(join(root, RESULTS), { force: true });
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
run('lint', bin('biome'), ['check', '.']);
run('import graph', process.execPath, ['scripts/check-imports.ts']);
run('k6 scripts typecheck', bin('tsc'), ['-p', 'loadtest/k6']);
run('packages', bin('turbo'), ['run', 'typecheck', 'test', '--concurrency=2', '--output-logs=new-only']);
run('cross-package tests', bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${RESULTS}`]);
summarize();

/**
 * `npm test`: the whole check, in the order a failure is cheapest to read.
 *   1. lint (Biome) and the import-graph rule;
 *   2. turbo: `typecheck` and `test` of every package (cached by turbo where inputs are unchanged);
 *   3. the cross-package suites in test/ (real processes, real Redis, the QEMU guest with real IPVS);
 *   4. one closing line "N passed, N failed" summed over every vitest run.
 * Any failure exits non-zero. Nothing is skipped: a missing prerequisite fails the run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

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

rmSync(join(root, RESULTS), { force: true });
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
run('lint', bin('biome'), ['check', '.']);
run('import graph', process.execPath, ['scripts/check-imports.ts']);
run('packages', bin('turbo'), ['run', 'typecheck', 'test', '--concurrency=2', '--output-logs=new-only']);
run('cross-package tests', bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${RESULTS}`]);
summarize();

/**
 * `npm run k6 -- SCRIPT [k6 run flags]`: runs a k6 script with real k6 when `k6` is on PATH, else with the Node
 * runner (loadtest/k6-runner), which implements the subset of k6 these scripts use and refuses the rest.
 * node_modules/.bin is skipped on the PATH search: the npm package named `k6` is a stub, not k6.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { main } from './k6-runner/cli.ts';

function realK6(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir || dir.split(/[\\/]/).includes('node_modules')) continue;
    try {
      accessSync(join(dir, 'k6'), constants.X_OK);
      return join(dir, 'k6');
    } catch {}
  }
  return undefined;
}

const args = process.argv.slice(2);
const runArgs = args[0] === 'run' ? args.slice(1) : args;
const k6 = realK6();
if (k6) {
  console.error(`k6-run: using ${k6}`);
  const r = spawnSync(k6, ['run', ...runArgs], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} else {
  console.error('k6-run: no k6 on PATH, using the Node runner (loadtest/k6-runner; see loadtest/README.md for how it differs)');
  process.exitCode = await main(runArgs);
}

/**
 * Director benchmark on real IPVS: boots the QEMU guest (`@tiergate/testkit`) and runs
 * `loadtest/director-bench-guest.ts` in a fresh network namespace: a full apply of services × dests from empty
 * with tiergate's netlink driver against `ipvsadm -R` of the same table (in another fresh namespace), one weight
 * change, and reconcile cycles with nothing to do. Prints the figures and their ratios; asserts nothing.
 *
 *   node loadtest/director-bench.ts [--services 1000] [--dests 10] [--repeat 5]
 *
 * The guest runs under TCG (software CPU emulation, several times slower than the host), so absolute times
 * are an upper bound; the ratio to ipvsadm, measured the same way in the same guest, is the comparable figure.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runInGuest } from '@tiergate/testkit';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    dests: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '5' },
  },
});
const node = join(root, 'node_modules/.bin/node');
const guest = join(root, 'loadtest/director-bench-guest.ts');

const script = `set -euo pipefail
for ns in nl adm; do ip netns add $ns; ip -n $ns link set lo up; done
# Node's own startup under TCG, for scale: the CLI pays it on every command.
s=$(date +%s%N); ${node} -e 0; echo $(( ($(date +%s%N) - s) / 1000000 )) > node-startup-ms.txt
ip netns exec nl ${node} ${guest} --services ${args.services} --dests ${args.dests} --repeat ${args.repeat} \\
  --adm-netns adm --out result.json > bench.log 2>&1
ip netns exec nl ipvsadm -Ln | grep -c -- '->' > nl-lines.txt || true
ip netns exec adm ipvsadm -Ln | grep -c -- '->' > adm-lines.txt || true
`;

await using run = await runInGuest({ script, timeoutMs: 1_800_000, memoryMb: 2048 });
const read = (f: string) => readFile(join(run.scratchDir, f), 'utf8');
if (run.exitCode !== 0) {
  process.stderr.write(`guest script failed (${run.exitCode}):\n${run.stderr}\n${await read('bench.log').catch(() => '')}\n`);
  process.exit(1);
}
const r = JSON.parse(await read('result.json')) as {
  services: number;
  destinations: number;
  fullApplyMs: number;
  fullApplyOps: number;
  ipvsadmRestoreMs: number;
  oneChangeMs: number;
  oneChangeOps: number;
  noopMedianMs: number;
  noopAllMs: number[];
  oneChangePhases: Record<string, number>;
  noopPhases: Record<string, number>;
};
const lines = [
  `guest boot ${run.bootMs} ms, run ${run.totalMs} ms; node -e 0 in the guest: ${(await read('node-startup-ms.txt')).trim()} ms`,
  `table: ${r.services} services × ${r.destinations / r.services} real servers (${r.destinations} destinations); ` +
    `kernel rows: netlink ${(await read('nl-lines.txt')).trim()}, ipvsadm ${(await read('adm-lines.txt')).trim()} (incl. header)`,
  `full apply, netlink:     ${r.fullApplyMs} ms (${r.fullApplyOps} ops)`,
  `full apply, ipvsadm -R:  ${r.ipvsadmRestoreMs} ms   ratio netlink/ipvsadm = ${(r.fullApplyMs / r.ipvsadmRestoreMs).toFixed(2)}`,
  `one weight change:       ${r.oneChangeMs} ms (${r.oneChangeOps} op)   phases ${JSON.stringify(r.oneChangePhases)}`,
  `no-op reconcile:         ${r.noopMedianMs} ms median of ${JSON.stringify(r.noopAllMs)}   phases ${JSON.stringify(r.noopPhases)}`,
];
process.stdout.write(`${lines.join('\n')}\n`);

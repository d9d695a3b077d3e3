/**
 * Director benchmark on real IPVS: boots the QEMU guest (`@tiergate/testkit`) and runs
 * `loadtest/director-bench-guest.ts` in a fresh network namespace, through the daemon's own path (`Director`):
 * a full apply of services × dests from empty against `ipvsadm -R` of the same table (in another fresh
 * namespace, timed first and flushed before the daemon starts, so each writes into an otherwise empty kernel),
 * one weight change by a config reload, one real server's health transition, cycles with nothing to do, and full
 * resyncs. Prints the figures and their ratios; asserts nothing.
 *
 *   node loadtest/director-bench.ts [--services 1000] [--dests 10] [--repeat 5] [--cpu-prof]
 *
 * `--cpu-prof` profiles the guest run (V8's CPU profiler) and prints the functions with the most self time.
 *
 * The guest runs under TCG (software CPU emulation, several times slower than the host), so absolute times
 * are an upper bound; the ratio to ipvsadm, measured the same way in the same guest, is the comparable figure.
 * Before either is timed, a small `ipvsadm -R` (100 services) in a scratch namespace runs the kernel's IPVS
 * paths once: TCG translates guest code on its first run, and whichever tool went first would pay for it.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '@tiergate/config';
import { desiredEntries, plan, type VirtualService } from '@tiergate/director';
import { formatIpvsadmRestore } from '@tiergate/ipvs';
import { runInGuest } from '@tiergate/testkit';
import { configText } from './director-bench-table.ts';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    dests: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '5' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const profile = args['cpu-prof'] ? '--cpu-prof --cpu-prof-dir=/tg-scratch/prof' : '';
// --no-memory-protection-keys: QEMU's `-cpu max` offers PKU, and V8's PKU-guarded JIT memory once aborted in the
// guest (a failed check in ThreadIsolation during a WebAssembly tier-up); see test/director-vm.test.ts.
const node = `${join(root, 'node_modules/.bin/node')} --no-memory-protection-keys`;
const guest = join(root, 'loadtest/director-bench-guest.ts');

/** The table as `ipvsadm -R` input: the daemon's plan from empty, as its dry run prints it. */
function restoreText(services: number): string {
  const config = parseConfig(configText(services, Number(args.dests), 1, 1)).virtual_services as readonly VirtualService[];
  return formatIpvsadmRestore(plan(desiredEntries(config, new Map()), [], new Set()));
}

const script = `set -euo pipefail
for ns in nl adm warm; do ip netns add $ns; ip -n $ns link set lo up; done
# Node's own startup under TCG, for scale: the CLI pays it on every command.
s=$(date +%s%N); ${node} -e 0; echo $(( ($(date +%s%N) - s) / 1000000 )) > node-startup-ms.txt
ip netns exec warm ipvsadm -R < warmup.txt
ip netns exec warm ipvsadm -C
s=$(date +%s%N); ip netns exec adm ipvsadm -R < restore.txt; e=$(date +%s%N)
echo $(( (e - s) / 100000 )) > ipvsadm-restore-tenth-ms.txt
ip netns exec adm ipvsadm -Ln | grep -c -- '->' > adm-lines.txt || true
ip netns exec adm ipvsadm -C
ip netns exec nl ${node} ${profile} ${guest} --services ${args.services} --dests ${args.dests} --repeat ${args.repeat} \\
  --out result.json > bench.log 2>&1
ip netns exec nl ipvsadm -Ln | grep -c -- '->' > nl-lines.txt || true
`;

await using run = await runInGuest({
  script,
  timeoutMs: 1_800_000,
  memoryMb: 2048,
  files: { 'restore.txt': restoreText(Number(args.services)), 'warmup.txt': restoreText(Math.min(100, Number(args.services))) },
});
const read = (f: string) => readFile(join(run.scratchDir, f), 'utf8');
if (run.exitCode === 0) await report();
else {
  // No process.exit here: `await using` must still remove the scratch dir.
  process.stderr.write(`guest script failed (${run.exitCode}):\n${run.stderr}\n${await read('bench.log').catch(() => '')}\n`);
  process.exitCode = 1;
}

interface GuestResult {
  services: number;
  destinations: number;
  configParseMs: number;
  fullApplyMs: number;
  fullApplyOps: number;
  fullApplyIo: { applyMs: number; batches: number; readMs: number; sendCalls: number };
  ipvsadmSaveMedianMs: number;
  configChange: {
    parseMedianMs: number;
    medianMs: number;
    allMs: number[];
    ops: number[];
    kinds: string[];
    parts: {
      beforeKernelMs: number;
      kernelMs: number;
      afterKernelMs: number;
      gcMs: number;
      mainCpuMs: number;
      otherThreadsCpuMs: number;
    }[];
    settled: { medianMs: number; allMs: number[]; settleMs: number[]; ops: number[] };
  };
  health: { medianDownMs: number; medianUpMs: number; downMs: number[]; upMs: number[]; ops: number[] };
  noop: { medianMs: number; allMs: number[]; kinds: string[] };
  fullResync: { medianMs: number; allMs: number[]; ops: number[]; phases: Record<string, number> };
  setDest: { medianMs: number; allMs: number[] };
}

/** The upper median (the middle value, or the higher of the two middle ones), as the guest half computes it. */
function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
}

async function report(): Promise<void> {
  const r = JSON.parse(await read('result.json')) as GuestResult;
  const ipvsadmMs = Number(await read('ipvsadm-restore-tenth-ms.txt')) / 10;
  const all = (xs: number[]) => JSON.stringify(xs);
  const io = r.fullApplyIo;
  const lines = [
    `guest boot ${run.bootMs} ms, run ${run.totalMs} ms; node -e 0 in the guest: ${(await read('node-startup-ms.txt')).trim()} ms`,
    `table: ${r.services} services × ${r.destinations / r.services} real servers (${r.destinations} destinations); ` +
      `kernel rows: netlink ${(await read('nl-lines.txt')).trim()}, ipvsadm ${(await read('adm-lines.txt')).trim()} (incl. header)`,
    `config parse (YAML + schema): ${r.configParseMs} ms first, ${r.configChange.parseMedianMs} ms median of the reloads (not in the figures below)`,
    `full apply (director.start), netlink: ${r.fullApplyMs} ms (${r.fullApplyOps} ops) = kernel writes ${io.applyMs} ms ` +
      `(${io.batches} applyBatch, ${io.sendCalls} sendto) + table read ${io.readMs} ms + the rest ${(r.fullApplyMs - io.applyMs - io.readMs).toFixed(1)} ms`,
    `full apply, ipvsadm -R:  ${ipvsadmMs} ms   ratio netlink/ipvsadm = ${(r.fullApplyMs / ipvsadmMs).toFixed(2)}`,
    `one weight change (reload → op applied): ${r.configChange.medianMs} ms median of ${all(r.configChange.allMs)} ` +
      `(first ${r.configChange.allMs[0]} ms, median of the others ${median(r.configChange.allMs.slice(1))} ms), ` +
      `ops ${all(r.configChange.ops)}, cycles ${r.configChange.kinds.join('/')}`,
    `  each reload as before the kernel write + the write + after it (GC pauses; CPU of the main thread / of other threads): ${r.configChange.parts
      .map((p) => `${p.beforeKernelMs} + ${p.kernelMs} + ${p.afterKernelMs} (GC ${p.gcMs}; CPU ${p.mainCpuMs} / ${p.otherThreadsCpuMs})`)
      .join(', ')}`,
    `one weight change once the parse's leftover work on other threads is done: ${r.configChange.settled.medianMs} ms median of ` +
      `${all(r.configChange.settled.allMs)}, ops ${all(r.configChange.settled.ops)} (waited ${all(r.configChange.settled.settleMs)} ms for it)`,
    `one health transition (→ SET_DEST applied): down ${r.health.medianDownMs} ms of ${all(r.health.downMs)}, up ${r.health.medianUpMs} ms of ${all(r.health.upMs)}, ops ${all(r.health.ops)}`,
    `no-op cycle:             ${r.noop.medianMs} ms median of ${all(r.noop.allMs)} (${r.noop.kinds.join('/')})`,
    `full resync cycle:       ${r.fullResync.medianMs} ms median of ${all(r.fullResync.allMs)}, ops ${all(r.fullResync.ops)}; phases ${JSON.stringify(r.fullResync.phases)}`,
    `bare SET_DEST round trip: ${r.setDest.medianMs} ms median of ${all(r.setDest.allMs)}`,
    `for scale, ipvsadm -S -n of the table: ${r.ipvsadmSaveMedianMs} ms (median; process start included)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (args['cpu-prof'])
    process.stdout.write(
      `\nself time by function (whole guest process):\n${await topFunctions(join(run.scratchDir, 'prof'))}\n` +
        `\nof which in packages/director:\n${await topFunctions(join(run.scratchDir, 'prof'), 'packages/director/')}\n`,
    );
}

/** The 25 functions with the most self time in the V8 CPU profile written to `dir` (of files under `only`, if given). */
async function topFunctions(dir: string, only?: string): Promise<string> {
  const { readdir } = await import('node:fs/promises');
  const [file] = await readdir(dir);
  const p = JSON.parse(await readFile(join(dir, file as string), 'utf8')) as {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
    timeDeltas: number[];
  };
  const self = new Map<number, number>();
  for (const [i, id] of p.samples.entries()) self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  const byFn = new Map<string, number>();
  for (const n of p.nodes) {
    if (only !== undefined && !n.callFrame.url.includes(only)) continue;
    const where = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(`file://${root}/`, '')}:${n.callFrame.lineNumber + 1}`;
    byFn.set(where, (byFn.get(where) ?? 0) + (self.get(n.id) ?? 0));
  }
  return [...byFn]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25)
    .map(([f, us]) => `${(us / 1000).toFixed(0).padStart(7)} ms  ${f.slice(0, 160)}`)
    .join('\n');
}

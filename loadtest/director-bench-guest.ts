/**
 * The director benchmark's guest half: run as root on a kernel with IPVS, in a fresh network namespace for the
 * netlink side (`loadtest/director-bench.ts` boots the QEMU guest and runs it; it also works on any IPVS host):
 *
 *   ip netns exec NS node loadtest/director-bench-guest.ts --services 1000 --dests 10 --adm-netns NS2 --out FILE
 *
 * Measures, in this process (Node's startup excluded, it is reported apart by the host script):
 * - `full`: one reconcile cycle from an empty table to services × dests with tiergate's netlink driver;
 * - `ipvsadm-R`: `ipvsadm -R` of the same table (from the dry-run renderer) in the namespace `--adm-netns`;
 * - `change`: one reconcile cycle after one real server's weight changed (one SET_DEST);
 * - `noop`: reconcile cycles with nothing to do (median of --repeat);
 * - `ipvsadm -S -n` of the table (what reading it costs ipvsadm, for the dump phase);
 * with the phases of each cycle (kernel dump, plan, apply, state file) from the cycle's own building blocks.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '@tiergate/config';
import { applyOps, desiredEntries, FileStateStore, openIpvsDriver, plan, reconcileCycle, type VirtualService } from '@tiergate/director';
import { formatIpvsadmRestore } from '@tiergate/ipvs';

const { values: args } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    dests: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '5' },
    'adm-netns': { type: 'string' },
    out: { type: 'string' },
  },
});
const nServices = Number(args.services);
const nDests = Number(args.dests);

/** Services on 10.200.0.0/16 (port 80), real servers on 10.201.0.0/16: all unicast once lo is up. */
function configText(changedWeight: number): string {
  const lines = ['version: 1', 'virtual_services:'];
  for (let s = 0; s < nServices; s++) {
    lines.push(`  - { address: 10.200.${s >> 8}.${s & 255}, port: 80, scheduler: wrr, real_servers: [`);
    const rs: string[] = [];
    for (let d = 0; d < nDests; d++) {
      const i = s * nDests + d;
      rs.push(`{ address: 10.201.${(i >> 8) & 255}.${i & 255}, weight: ${s === 0 && d === 0 ? changedWeight : 1} }`);
    }
    lines.push(`      ${rs.join(', ')}] }`);
  }
  return `${lines.join('\n')}\n`;
}

const ms = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

const services = parseConfig(configText(1)).virtual_services as readonly VirtualService[];
const changed = parseConfig(configText(5)).virtual_services as readonly VirtualService[];
await using driver = await openIpvsDriver('netlink');
const state = new FileStateStore(join(mkdtempSync(join(tmpdir(), 'tg-bench-')), 'state.json'));
const cycle = async (svcs: readonly VirtualService[]) => {
  const t0 = performance.now();
  const r = await reconcileCycle({ services: svcs, driver, state, health: new Map(), now: Date.now() });
  return { ms: ms(t0), ops: r.ops.length };
};

/** The phases of one cycle, timed apart (the same calls reconcileCycle makes, minus drain bookkeeping). */
async function phases(svcs: readonly VirtualService[]) {
  let t0 = performance.now();
  const actual = await driver.listServices();
  const dump = ms(t0);
  t0 = performance.now();
  await state.load();
  const stateMs = ms(t0);
  t0 = performance.now();
  const desired = desiredEntries(svcs, new Map());
  const desiredMs = ms(t0);
  t0 = performance.now();
  const ops = plan(desired, actual, new Set());
  const planMs = ms(t0);
  t0 = performance.now();
  await applyOps(driver, ops);
  return { dump, state: stateMs, desired: desiredMs, plan: planMs, apply: ms(t0), ops: ops.length };
}

const full = await cycle(services);

// The same table for ipvsadm -R, rendered from the plan from empty (what a dry run prints).
let ipvsadmR: number | null = null;
if (args['adm-netns']) {
  const restore = formatIpvsadmRestore(plan(desiredEntries(services, new Map()), [], new Set()));
  const t0 = performance.now();
  const r = spawnSync('ip', ['netns', 'exec', args['adm-netns'], 'ipvsadm', '-R'], { input: restore, encoding: 'utf8' });
  ipvsadmR = ms(t0);
  if (r.status !== 0) throw new Error(`ipvsadm -R failed: ${r.stderr}`);
}
const saves: number[] = [];
for (let i = 0; i < Number(args.repeat); i++) {
  const t0 = performance.now();
  spawnSync('ipvsadm', ['-S', '-n'], { stdio: 'ignore' });
  saves.push(ms(t0));
}

const change = await cycle(changed);
const changeBack = await phases(services);
const noops: number[] = [];
for (let i = 0; i < Number(args.repeat); i++) noops.push((await cycle(services)).ms);
const noopPhases = await phases(services);

const result = {
  services: nServices,
  destinations: nServices * nDests,
  fullApplyMs: full.ms,
  fullApplyOps: full.ops,
  ipvsadmRestoreMs: ipvsadmR,
  oneChangeMs: change.ms,
  oneChangeOps: change.ops,
  oneChangePhases: changeBack,
  noopMedianMs: median(noops),
  noopAllMs: noops,
  noopPhases,
  ipvsadmSaveMedianMs: median(saves),
};
const text = JSON.stringify(result, null, 2);
if (args.out) writeFileSync(args.out, text);
process.stdout.write(`${text}\n`);

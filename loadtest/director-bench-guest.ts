/**
 * The director benchmark's guest half: run as root on a kernel with IPVS, in a fresh network namespace
 * (`loadtest/director-bench.ts` boots the QEMU guest, times `ipvsadm -R` of the same table beforehand, and runs
 * this; it also works on any IPVS host):
 *
 *   ip netns exec NS node loadtest/director-bench-guest.ts --services 1000 --dests 10 --out FILE
 *
 * Everything goes through the daemon's own path (`Director` with the netlink driver and a state file), in this
 * process (Node's startup excluded; the host script reports it apart). The driver is wrapped to time the calls
 * the daemon makes (kernel writes `applyBatch`, table reads `listServices`), so each figure says how much of it
 * is kernel I/O:
 * - `full`: `director.start()` on an empty table: the first (full) cycle creates services × dests;
 * - `configChange`: `director.reload(config)` with one real server's weight changed, from handing it the parsed
 *   config to the op applied (the YAML parse of the new file is timed apart); then the same once the parse's
 *   leftover work on V8's other threads is done (`settled`);
 * - `health`: one real server of service 0 (checked by TCP on loopback) stops answering, then answers again:
 *   from the daemon's transition (its `real server down|up` log line) to the SET_DEST applied (`reconciled`);
 * - `noop`: `director.reconcileNow()` with nothing to do;
 * - `fullResync`: `director.reconcileNow({ full: true })` (what runs every `resync_interval`), with its phases
 *   (kernel dump, desired state, plan) timed apart from the cycle's building blocks;
 * - `setDest`: one bare `updateDestination` through the driver (the netlink round trip a change cannot avoid);
 * - `ipvsadm -S -n` of the table (what reading it costs ipvsadm).
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseConfig } from '@tiergate/config';
import {
  Director,
  desiredEntries,
  FileStateStore,
  type Logger,
  openIpvsDriver,
  plan,
  serviceIdOfConfig,
  type VirtualService,
} from '@tiergate/director';
import type { IpvsDriver, NetlinkIpvsDriver } from '@tiergate/ipvs';
import { checkedAddress, configText as tableConfig } from './director-bench-table.ts';

const { values: args } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    dests: { type: 'string', default: '10' },
    repeat: { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
const nServices = Number(args.services);
const nDests = Number(args.dests);
const repeat = Number(args.repeat);

const CHECKED = checkedAddress;
const configText = (changedWeight: number, checkPort: number) => tableConfig(nServices, nDests, changedWeight, checkPort);

const ms = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function listen(host: string, port: number): Promise<Server> {
  const server = createServer((s) => s.end()).listen(port, host);
  await once(server, 'listening');
  return server;
}

// Service 0's real servers answer on one port of 127.0.1.0..; the first picks it.
const first = await listen(CHECKED(0), 0);
const checkPort = (first.address() as { port: number }).port;
const servers = [first];
for (let d = 1; d < nDests; d++) servers.push(await listen(CHECKED(d), checkPort));

/** The daemon's log lines of interest, with the time each was written. */
const seen: { at: number; msg: string; ops?: number }[] = [];
const record = (obj: object, msg?: string) => {
  if (msg) seen.push({ at: performance.now(), msg, ops: (obj as { ops?: number }).ops });
};
const logger: Logger = { debug() {}, info: record, warn: record, error: record };

const parse = (text: string) => {
  const t0 = performance.now();
  const services = parseConfig(text).virtual_services as readonly VirtualService[];
  return { services, parseMs: ms(t0) };
};
const base = parse(configText(1, checkPort));
await using driver = await openIpvsDriver('netlink');
const socketStats = () => (driver as NetlinkIpvsDriver).socketStats;

/** Time the daemon spends in kernel writes (encode + netlink, per applyBatch) and table reads, summed. */
const io = { applyMs: 0, applyCalls: 0, readMs: 0, lastApply: { at: 0, ms: 0 } };

/** Garbage collections (start, duration), to tell a reload's own work from a collection it happened to meet. */
const gcs: { at: number; ms: number }[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push({ at: e.startTime, ms: e.duration });
});
gcObserver.observe({ entryTypes: ['gc'] });
/** ms of garbage collection that started in [from, to). */
const gcWithin = (from: number, to: number) =>
  Math.round(gcs.filter((g) => g.at >= from && g.at < to).reduce((sum, g) => sum + g.ms, 0) * 10) / 10;
const timedDriver: Pick<IpvsDriver, 'listServices' | 'listDestinations' | 'applyBatch'> = {
  async listServices() {
    const t = performance.now();
    try {
      return await driver.listServices();
    } finally {
      io.readMs += performance.now() - t;
    }
  },
  listDestinations: (id) => driver.listDestinations(id),
  async applyBatch(ops) {
    const t = performance.now();
    try {
      return await driver.applyBatch(ops);
    } finally {
      io.applyMs += performance.now() - t;
      io.applyCalls += 1;
      io.lastApply = { at: t, ms: performance.now() - t };
    }
  },
};
const director = new Director({
  name: 'bench',
  services: base.services,
  driver: timedDriver,
  state: new FileStateStore(join(mkdtempSync(join(tmpdir(), 'tg-bench-')), 'state.json')),
  // Cycles here run when the benchmark asks (or on a health transition), never on a timer.
  intervalMs: 3_600_000,
  resyncMs: 3_600_000,
  logger,
});
// Not status(): that builds all 10,000 destinations' status, garbage collected during the next measurement.
const lastOps = () => director.lastCycle?.ops ?? -1;
const lastKind = () => director.lastCycle?.kind ?? 'none';

const sent = socketStats();
let t0 = performance.now();
await director.start();
const full = {
  ms: ms(t0),
  ops: lastOps(),
  kind: lastKind(),
  applyMs: Math.round(io.applyMs * 10) / 10,
  batches: io.applyCalls,
  readMs: Math.round(io.readMs * 10) / 10,
  sendCalls: socketStats().sendCalls - sent.sendCalls,
};

const saves: number[] = [];
for (let i = 0; i < repeat; i++) {
  t0 = performance.now();
  spawnSync('ipvsadm', ['-S', '-n'], { stdio: 'ignore' });
  saves.push(ms(t0));
}

// One weight change through a config reload, back and forth: each reload is a one-destination change, and each
// gets a freshly parsed config, as a SIGHUP does (nothing derived from the previous one is reused).
const configChange = {
  parseMs: [] as number[],
  allMs: [] as number[],
  ops: [] as number[],
  kinds: new Set<string>(),
  windows: [] as { from: number; kernelAt: number; kernelMs: number; to: number; mainCpuMs: number; allCpuMs: number }[],
};
/** CPU time (user + system, ms) of this thread, and of the whole process (its helper threads: GC, compilers). */
const cpuMs = () => {
  const main = process.threadCpuUsage();
  const all = process.cpuUsage();
  return { main: (main.user + main.system) / 1000, all: (all.user + all.system) / 1000 };
};
let current = base.services;
for (let i = 0; i < repeat; i++) {
  const next = parse(configText(i % 2 === 0 ? 5 : 1, checkPort));
  configChange.parseMs.push(next.parseMs);
  const cpu0 = cpuMs();
  t0 = performance.now();
  await director.reload(next.services);
  current = next.services;
  configChange.allMs.push(ms(t0));
  const cpu1 = cpuMs();
  configChange.windows.push({
    from: t0,
    kernelAt: io.lastApply.at,
    kernelMs: io.lastApply.ms,
    to: performance.now(),
    mainCpuMs: cpu1.main - cpu0.main,
    allCpuMs: cpu1.all - cpu0.all,
  });
  configChange.ops.push(lastOps());
  configChange.kinds.add(lastKind());
}

/**
 * Waits until this process's other threads (V8's GC and compiler threads, still busy with the parse just done)
 * are idle: under 5 ms of their CPU in 100 ms, for at most 5 s. Returns the time waited.
 */
async function settle(): Promise<number> {
  const t = performance.now();
  let last = cpuMs();
  while (performance.now() - t < 5_000) {
    await new Promise((r) => setTimeout(r, 100));
    const now = cpuMs();
    const other = now.all - now.main - (last.all - last.main);
    last = now;
    if (other < 5) break;
  }
  return ms(t);
}

// The same weight change with the parse's leftover work done first: the guest's vCPUs share one host thread, so
// while V8's helper threads collect the parse's garbage, the reload's own thread runs at a fraction of its speed.
const settled = { allMs: [] as number[], settleMs: [] as number[], ops: [] as number[] };
for (let i = repeat; i < 2 * repeat; i++) {
  const next = parse(configText(i % 2 === 0 ? 5 : 1, checkPort));
  settled.settleMs.push(await settle());
  t0 = performance.now();
  await director.reload(next.services);
  current = next.services;
  settled.allMs.push(ms(t0));
  settled.ops.push(lastOps());
}

/** Waits for the daemon's transition line and the `reconciled` line after it; the time between them. */
async function transition(state: 'down' | 'up'): Promise<{ ms: number; ops: number }> {
  const from = seen.length;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const rest = seen.slice(from);
    const tr = rest.findIndex((l) => l.msg === `real server ${state}`);
    const applied = tr === -1 ? undefined : rest.slice(tr).find((l) => l.msg === 'reconciled');
    if (applied) return { ms: Math.round((applied.at - (rest[tr]?.at ?? 0)) * 10) / 10, ops: applied.ops ?? -1 };
    if (Date.now() > deadline) throw new Error(`no 'real server ${state}' followed by 'reconciled' within 60 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const health = { downMs: [] as number[], upMs: [] as number[], ops: [] as number[] };
for (let i = 0; i < Math.min(repeat, 3); i++) {
  const s = servers[0] as Server;
  await new Promise((r) => s.close(r));
  const down = await transition('down');
  servers[0] = await listen(CHECKED(0), checkPort);
  const up = await transition('up');
  health.downMs.push(down.ms);
  health.upMs.push(up.ms);
  health.ops.push(down.ops, up.ops);
}

const noops: number[] = [];
const noopKinds = new Set<string>();
for (let i = 0; i < repeat; i++) {
  t0 = performance.now();
  await director.reconcileNow();
  noops.push(ms(t0));
  noopKinds.add(lastKind());
}

const resyncs: number[] = [];
const resyncOps: number[] = [];
for (let i = 0; i < Math.min(repeat, 3); i++) {
  t0 = performance.now();
  await director.reconcileNow({ full: true });
  resyncs.push(ms(t0));
  resyncOps.push(lastOps());
}

/** The phases of a full cycle, timed apart (the calls reconcileCycle makes, minus drain and state bookkeeping). */
async function fullPhases(svcs: readonly VirtualService[]) {
  let t = performance.now();
  const actual = await driver.listServices();
  const dump = ms(t);
  t = performance.now();
  const desired = desiredEntries(svcs, new Map());
  const desiredMs = ms(t);
  t = performance.now();
  const ops = plan(desired, actual, new Set());
  return { dump, desired: desiredMs, plan: ms(t), ops: ops.length };
}
const resyncPhases = await fullPhases(current);

// The bare netlink round trip of one SET_DEST (service 1's first real server, to its current weight).
const svc1 = base.services[1] as VirtualService;
const dest1 = desiredEntries([svc1], new Map())[0]?.destinations[0];
const setDest: number[] = [];
for (let i = 0; i < repeat && dest1; i++) {
  t0 = performance.now();
  await driver.updateDestination(serviceIdOfConfig(svc1), dest1);
  setDest.push(ms(t0));
}

await director.stop();
for (const s of servers) s.close();
// GC entries arrive on a later turn of the event loop.
await new Promise((r) => setTimeout(r, 50));
gcObserver.disconnect();
const r1 = (x: number) => Math.round(x * 10) / 10;
/**
 * Each reload as: before its kernel write (diff, plan), the write, after it; the GC pauses inside it; and CPU time
 * of the main thread and of the other threads (GC, compilers) meanwhile: the guest's vCPUs share one host thread
 * (single-threaded TCG), so a helper thread's work shows in the main thread's wall time.
 */
const reloadParts = configChange.windows.map((w) => ({
  beforeKernelMs: r1(w.kernelAt - w.from),
  kernelMs: r1(w.kernelMs),
  afterKernelMs: r1(w.to - w.kernelAt - w.kernelMs),
  gcMs: gcWithin(w.from, w.to),
  mainCpuMs: r1(w.mainCpuMs),
  otherThreadsCpuMs: r1(w.allCpuMs - w.mainCpuMs),
}));

const result = {
  services: nServices,
  destinations: nServices * nDests,
  configParseMs: base.parseMs,
  fullApplyMs: full.ms,
  fullApplyOps: full.ops,
  fullApplyKind: full.kind,
  fullApplyIo: { applyMs: full.applyMs, batches: full.batches, readMs: full.readMs, sendCalls: full.sendCalls },
  ipvsadmSaveMedianMs: median(saves),
  configChange: {
    parseMedianMs: median(configChange.parseMs),
    medianMs: median(configChange.allMs),
    allMs: configChange.allMs,
    ops: configChange.ops,
    kinds: [...configChange.kinds],
    parts: reloadParts,
    settled: { medianMs: median(settled.allMs), ...settled },
  },
  health: { medianDownMs: median(health.downMs), medianUpMs: median(health.upMs), ...health },
  noop: { medianMs: median(noops), allMs: noops, kinds: [...noopKinds] },
  fullResync: { medianMs: median(resyncs), allMs: resyncs, ops: resyncOps, phases: resyncPhases },
  setDest: { medianMs: median(setDest), allMs: setDest },
};
const text = JSON.stringify(result, null, 2);
if (args.out) writeFileSync(args.out, text);
process.stdout.write(`${text}\n`);

/**
 * What tracing costs the proxy: throughput with tracing off, at 100 % and at 1 % sampling, measured as paired costs.
 *
 * The machine this runs on is shared and drifts by ±6 % (standard deviation) between one 4-second window and the
 * next within one process, more than the 3 % to be resolved (docs/telemetry.md). So each variant is measured beside
 * a fresh `off` proxy: both on core 0 at the same time, in equal cpu cgroups and under SCHED_BATCH, each loaded by its
 * own wrk, so that the host's drift hits both and their req/s ratio is their CPU-per-request ratio. A round is one
 * such pair per variant (fresh processes, warmed, then measured in slices); the summary is each variant's mean cost
 * over rounds ± its standard error, and the slices' median. `off#b` (`off` beside `off`) is the method's own noise.
 * Needs root (cgroups).
 *
 *   node loadtest/tracing-bench.ts [--rounds 6] [--slices 10] [--slice 3] [--warmup 5] [--connections 50]
 *                                  [--variants off,1,0.01] [--node-flags='--max-semi-space-size=4 ...'] [--child-log FILE]
 *
 * A variant is `off` (no SDK loaded) or a sampling ratio (SDK on, OTLP/HTTP protobuf export, from the exporter
 * thread); a ratio with an `i` after it (`0.01i`) exports inline, from the serving thread, to compare; `#label` after
 * any variant makes a separate one of the same kind. The spans go to a sink in this process that accepts each export
 * with 200 and an empty ExportTraceServiceResponse without decoding it (decoding would compete with wrk for core 1;
 * the testkit receiver is for correctness, not load); it counts the export requests of each variant.
 * CPU placement (2 cores): the proxies on core 0 (one pair loaded at a time); wrk, the upstream nginx and this
 * process on core 1. Loopback only; every wrk run is bounded by --slice or --warmup seconds. Performance is measured here,
 * never asserted.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '@tiergate/testkit';
import { runWrk, stopChild, type WrkResult } from './lib.ts';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    slice: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '6' },
    slices: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    variants: { type: 'string', default: 'off,1,0.01' },
    // Extra node flags for the proxy processes (e.g. `--trace-gc`), and a file their stdout is copied to.
    // The default is the young-generation cap `tiergate proxy` workers run with (PROXY_V8_FLAGS, cli primary.ts).
    'node-flags': { type: 'string', default: '--max-semi-space-size=4' },
    'child-log': { type: 'string' },
  },
});
const SLICE = Number(args.slice);
const SLICES = Number(args.slices);
const WARMUP = Number(args.warmup);
const ROUNDS = Number(args.rounds);
const CONNS = Number(args.connections);
const VARIANTS = args.variants.split(',');

const work = mkdtempSync(join(tmpdir(), 'tg-trace-bench-'));
// nginx workers run as an unprivileged user: they must be able to read the body.
chmodSync(work, 0o755);
const children: ChildProcess[] = [];
process.on('exit', () => {
  // nginx gets SIGTERM: its master then stops its worker, which a SIGKILLed master would leave running.
  for (const c of children) if (c.exitCode === null) c.kill(c === upstream ? 'SIGTERM' : 'SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function start(argv: string[], core: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const c = spawn('taskset', ['-c', core, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  c.stderr?.on('data', (d) => (err = (err + d).slice(-4000)));
  c.on('exit', (code) => {
    if (code) console.error(`${argv[0]} exited ${code}: ${err}`);
  });
  children.push(c);
  return c;
}

const stop = (c: ChildProcess) => stopChild(c, 15_000);
/** Transport errors and non-2xx answers together: every request that did not succeed. */
async function wrk(url: string, seconds: number): Promise<WrkResult> {
  const r = await runWrk({ url, seconds, connections: CONNS });
  return { ...r, errors: r.errors + r.non2xx };
}

/**
 * CPU seconds (user + system) the process has used: per request, a measure that contention from other
 * processes on the core distorts much less than req/s does.
 */
function cpuSeconds(pid: number): number {
  // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name; clock ticks are 100 Hz on Linux.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Jiffies per CPU line of /proc/stat (`cpu0`, `cpu1`): busy (user+nice+system+irq+softirq), idle (+iowait), steal. */
function coreTimes(): Map<string, { busy: number; idle: number; steal: number }> {
  const out = new Map<string, { busy: number; idle: number; steal: number }>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^(cpu\d+) (.*)$/.exec(line);
    if (!m) continue;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2]!.trim().split(/\s+/).map(Number) as number[];
    out.set(m[1]!, { busy: user! + nice! + system! + irq! + softirq!, idle: idle! + iowait!, steal: steal! });
  }
  return out;
}

/** `core0 99 % busy, core1 71 %, steal 0 %` between two coreTimes() readings. */
function coreReport(before: ReturnType<typeof coreTimes>, after: ReturnType<typeof coreTimes>): string {
  const parts: string[] = [];
  let steal = 0;
  let all = 0;
  for (const [cpu, a] of after) {
    const b = before.get(cpu)!;
    const busy = a.busy - b.busy;
    const total = busy + a.idle - b.idle + a.steal - b.steal;
    steal += a.steal - b.steal;
    all += total;
    parts.push(`${cpu} ${total ? ((busy * 100) / total).toFixed(0) : '?'} %`);
  }
  return `${parts.join(', ')}, steal ${all ? ((steal * 100) / all).toFixed(1) : '?'} %`;
}

// This process (the OTLP sink, the orchestration) stays off the proxy's core: on core 1, with wrk and the upstream,
// where the collector's side of an export belongs (in the stack it is another machine).
spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });

// ---------------------------------------------------------------- the OTLP sink (counts requests and bytes only)

let exports = 0;
let exportBytes = 0;
/** Export requests per variant: each variant's proxy exports to `<sink>/<variant index>/v1/traces`. */
const exportsBy = new Map<string, number>();
const sink = createServer((req, res) => {
  req.on('data', (c: Buffer) => (exportBytes += c.length));
  req.on('end', () => {
    exports++;
    const variant = VARIANTS[Number(req.url!.split('/')[1])];
    if (variant !== undefined) exportsBy.set(variant, (exportsBy.get(variant) ?? 0) + 1);
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '0' }).end();
  });
});
sink.listen(0, '127.0.0.1');
await once(sink, 'listening');
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;

// ---------------------------------------------------------------- the upstream: nginx serving a 100-byte body on core 1

const upPort = await freePort();
mkdirSync(join(work, 'www'));
writeFileSync(join(work, 'www', 'b100'), 'x'.repeat(100));
const conf = join(work, 'upstream.conf');
writeFileSync(
  conf,
  `pid ${work}/nginx.pid; error_log ${work}/nginx.err warn; daemon off; worker_processes 1;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:${upPort}; root ${work}/www; location / { default_type text/plain; } } }
`,
);
const upstream = start(['nginx', '-c', conf, '-p', work], '1');

// ---------------------------------------------------------------- one proxy per variant

/**
 * A cpu cgroup of its own for variant `i` (default weight, as every other's): under load together the proxies then
 * get equal shares of core 0 whatever threads each runs, so their req/s ratio is their CPU-per-request ratio.
 * Needs root and the cpu controller (cgroup v1 `cpu`, or v2 with `cpu` enabled for the root's children).
 */
function cpuGroup(i: number): string {
  for (const [dir, v1] of [
    ['/sys/fs/cgroup/cpu', true],
    ['/sys/fs/cgroup', false],
  ] as const) {
    const usable = v1
      ? existsSync(join(dir, 'cpu.shares'))
      : existsSync(join(dir, 'cgroup.subtree_control')) && readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').includes('cpu');
    if (!usable) continue;
    const group = join(dir, `tiergate-bench-${process.pid}-${i}`);
    if (!existsSync(group)) mkdirSync(group);
    groups.add(group);
    return group;
  }
  throw new Error('tracing-bench needs a cpu cgroup (run as root, with the cpu controller mounted)');
}
const groups = new Set<string>();
// Groups a run that crashed left behind (their proxies were still exiting when it did): empty now, removed.
for (const dir of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup']) {
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir)) {
    const pid = /^tiergate-bench-(\d+)-\d+$/.exec(name)?.[1];
    if (pid === undefined || existsSync(`/proc/${pid}`)) continue;
    try {
      rmdirSync(join(dir, name));
    } catch {
      // Still has a task: left for the run after this one.
    }
  }
}
process.on('exit', () => {
  for (const g of groups) {
    try {
      rmdirSync(g);
    } catch {
      // Still has a task (a proxy being killed): the kernel keeps it until then; nothing else to do at exit.
    }
  }
});

async function startVariant(variant: string): Promise<{ proc: ChildProcess; port: number }> {
  // `off#b`: `off` beside `off` (any label after `#`), to see the method's own noise in the same run.
  const kind = variant.split('#')[0]!;
  const config = {
    version: 1,
    proxy: {
      listeners: [{ address: '127.0.0.1', port: 0 }],
      access_log: false,
      // The load's connections are not reopened mid-run (nginx's side has keepalive_requests 100000 too).
      limits: { keepalive_requests: 100_000 },
      pools: { app: { servers: [{ address: `127.0.0.1:${upPort}` }] } },
    },
    telemetry: {
      tracing:
        kind === 'off'
          ? { enabled: false }
          : { enabled: true, endpoint: `${sinkUrl}/${VARIANTS.indexOf(variant)}`, sampling_ratio: Number.parseFloat(kind) },
    },
  };
  const flags = args['node-flags'].split(' ').filter((f) => f !== '');
  // Into its own cpu cgroup before node starts, so that every thread it makes (the exporter's, V8's) is in it; and
  // SCHED_BATCH, so that a proxy woken by a request does not preempt the one running: they take turns by the
  // scheduler's slice instead of many times a millisecond (which added ~35 % CPU per request to each, in caches).
  const group = cpuGroup(VARIANTS.indexOf(variant));
  const proc = start(
    [
      'sh',
      '-c',
      'echo $$ > "$0/cgroup.procs" && exec chrt --batch 0 "$@"',
      group,
      process.execPath,
      ...flags,
      join(root, 'loadtest/tracing-bench-proxy.ts'),
      JSON.stringify(config),
      kind.endsWith('i') ? 'inline' : 'thread',
    ],
    '0',
  );
  // Read with 'data' rather than for-await: leaving a for-await loop destroys the stream, and --child-log
  // wants the rest of the output.
  const log = args['child-log'];
  let out = '';
  const port = await new Promise<number | undefined>((resolve) => {
    proc.stdout!.on('data', (d: Buffer) => {
      if (log) appendFileSync(log, d);
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', () => resolve(undefined));
  });
  if (port !== undefined) return { proc, port };
  throw new Error(`proxy for variant ${variant} exited before listening`);
}

/** One slice's figures for one variant. */
interface Slice {
  rps: number;
  cpuUs: number;
  p99ms: number;
  errors: number;
}
if (VARIANTS[0] !== 'off' || VARIANTS.length < 2) throw new Error('--variants: `off` first, then the variants to compare with it');
const OTHERS = VARIANTS.slice(1);
/** Each variant's slices, and `off`'s slices measured beside it (keyed by the variant). */
const slices = new Map<string, Slice[]>(OTHERS.map((v) => [v, []]));
const offSlices = new Map<string, Slice[]>(OTHERS.map((v) => [v, []]));
/** Per variant, per round: the cost (% of req/s lost against `off` measured beside it). */
const roundCosts = new Map<string, number[]>(OTHERS.map((v) => [v, []]));
const sliceCosts = new Map<string, number[]>(OTHERS.map((v) => [v, []]));
console.log(
  `tracing benchmark: ${CONNS} connections per proxy; ${ROUNDS} rounds; per round, each variant beside a fresh \`off\`, ` +
    `the two sharing core 0 in equal cpu cgroups, loaded at once: warmed ${WARMUP}s, then ${SLICES} slices of ${SLICE}s`,
);

/** One variant and a fresh `off` side by side: their slices and the round's cost. */
async function measurePair(variant: string): Promise<string> {
  const pair = [variant, 'off'];
  const procs = await Promise.all(
    pair.map(async (v) => {
      const { proc, port } = await startVariant(v);
      return { proc, url: `http://127.0.0.1:${port}/b100` };
    }),
  );
  const exportsBefore = exportsBy.get(variant) ?? 0;
  await Promise.all(procs.map(({ url }) => wrk(url, WARMUP)));
  const coresBefore = coreTimes();
  const got: Slice[][] = [[], []];
  for (let s = 0; s < SLICES; s++) {
    const cpuBefore = procs.map(({ proc }) => cpuSeconds(proc.pid!));
    const results = await Promise.all(procs.map(({ url }) => wrk(url, SLICE)));
    results.forEach((r, i) => {
      const cpuUs = ((cpuSeconds(procs[i]!.proc.pid!) - cpuBefore[i]!) / r.requests) * 1e6;
      got[i]!.push({ rps: r.rps, cpuUs, p99ms: r.p99ms, errors: r.errors });
    });
    sliceCosts.get(variant)!.push(((results[1]!.rps - results[0]!.rps) * 100) / results[1]!.rps);
  }
  const cores = coreReport(coresBefore, coreTimes());
  // SIGTERM flushes what is batched (tracing-bench-proxy.ts): once a proxy has exited, its spans are counted.
  await Promise.all(procs.map(({ proc }) => stop(proc)));
  slices.get(variant)!.push(...got[0]!);
  offSlices.get(variant)!.push(...got[1]!);
  const [rps, offRps] = got.map((ss) => mean(ss.map((x) => x.rps))) as [number, number];
  const cost = ((offRps - rps) * 100) / offRps;
  roundCosts.get(variant)!.push(cost);
  const exported = (exportsBy.get(variant) ?? 0) - exportsBefore;
  return `${variant} ${rps.toFixed(0)} vs off ${offRps.toFixed(0)} req/s: ${cost.toFixed(1)} % (${exported} exports; ${cores})`;
}

for (let round = 1; round <= ROUNDS; round++) {
  for (const variant of OTHERS) console.log(`round ${round}: ${await measurePair(variant)}`);
}
function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
function standardError(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, c) => a + (c - m) ** 2, 0) / (xs.length - 1) / xs.length);
}
const describe = (ss: Slice[]) =>
  `${mean(ss.map((x) => x.rps))
    .toFixed(0)
    .padStart(6)} req/s ${median(ss.map((x) => x.cpuUs))
    .toFixed(1)
    .padStart(6)} µs CPU/req ` + `p99 ${median(ss.map((x) => x.p99ms)).toFixed(1)} ms errors ${ss.reduce((a, x) => a + x.errors, 0)}`;
// Costs against `off` measured at the same time on the same core: what the machine does to one it does to the
// other. Per slice they still scatter (how an event loop batches its work varies from second to second), and a
// process can run a few % faster or slower than another of the same variant for its whole life; so the headline is
// the mean over rounds (fresh processes each) with its standard error, the slices' median beside it.
console.log('\nthroughput lost vs off beside it: mean over rounds ± standard error [each round] | median over slices');
for (const variant of OTHERS) {
  const rounds = roundCosts.get(variant)!;
  const se = rounds.length > 1 ? ` ± ${standardError(rounds).toFixed(1)}` : '';
  console.log(
    `${variant.padEnd(10)} ${mean(rounds).toFixed(1).padStart(5)}${se} %  [${rounds.map((c) => c.toFixed(1)).join(' ')}] | ` +
      `${median(sliceCosts.get(variant)!).toFixed(1)} %`,
  );
  console.log(`${''.padEnd(10)} ${describe(slices.get(variant)!)}   beside it off: ${describe(offSlices.get(variant)!)}`);
}
console.log(`OTLP sink: ${exports} export requests, ${(exportBytes / 1e6).toFixed(1)} MB`);
sink.close();
for (const c of children) await stop(c);

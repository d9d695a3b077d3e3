/**
 * Side-by-side proxy benchmark: `tiergate proxy`, Debian's nginx and HAProxy, and the bare undici proxy loop,
 * proxying to the same two upstreams, driven by the same load generator (wrk), one after the other in one run.
 * Reports per target and body size the proxy's own CPU time per request (the measure that holds), req/s,
 * p50/p99 latency and RSS, how busy the load side's core was, and each target's ratio to nginx.
 *
 *   node loadtest/proxy-bench.ts [--duration 10] [--connections 50] [--bodies 100,65536] [--workers 1]
 *                                [--soak 0] [--memory] [--targets nginx,haproxy,undici,tiergate] [--rounds 1]
 *                                [--base DIR]
 *
 * CPU placement (2 cores): the proxy under test on core 0, wrk and the upstream nginx on core 1.
 * CPU per request: utime + stime of the proxy's whole process tree (every process and thread, /proc/PID/stat)
 * over the measured window, divided by the requests wrk completed in it. When the load side's core (1) is more
 * than 85 % busy, wrk and the upstreams limit the rate, not the proxy: req/s ratios then flatter the slower proxy
 * and the run is flagged; its CPU per request still holds. The machine may be shared: `--rounds N` runs every
 * target N times, interleaved (each round starts every target afresh), and the summary takes each target's round
 * with the median CPU per request, so a busy minute on the host weighs on all targets alike.
 * Targets: `nginx` (1 worker, upstream keepalive 32, the same forwarding headers), `haproxy` (1 thread,
 * `http-reuse always`, the same headers), `undici` (loadtest/bare-undici-proxy.ts: node:http + undici dispatch,
 * nothing else; the proxy's V8 flags and malloc settings), `undici-lean` (loadtest/bare-lean-proxy.ts: the same
 * loop with the server side on net.Socket + undici's llhttp WASM instead of node:http; `-direct` variants of
 * both answer by themselves, without undici or the upstream: the server side alone), `tiergate` (examples/local-stack.yaml's features:
 * trusted proxies, round robin, an active health check, /metrics; access log and tracing off; the settings
 * `tiergate proxy` gives itself: docs/operations.md "Memory"), and tiergate variants named by what they set on
 * top (targetFlags, targetEnv; a setting the variant gives replaces the default), e.g. `tiergate-log` (access log
 * on, to the proxy's stdout, discarded), `tiergate-base` (the tiergate of another checkout, `--base DIR`, with its
 * own node_modules: before/after in one run), `tiergate-ss8`, `tiergate-ios0-arena16` (V8's and glibc's own
 * defaults), `tiergate-nmr`.
 * `--memory` prints where each peak RSS was (anonymous and file-backed pages, V8 heap, external memory).
 * `--soak N` runs the first body size N more seconds in 30 s slices: req/s, p99 and peak RSS per slice.
 * Loopback only; every run is bounded by --duration. Not part of `npm test`: performance is measured, not asserted.
 */

import { type ChildProcess, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '@tiergate/testkit';
import { PROXY_MALLOC_ENV, PROXY_V8_FLAGS } from '../packages/cli/src/proxy-runtime/v8-flags.ts';
import {
  benchWorkspace,
  busyFraction,
  coreJiffies,
  treeRssKiB as libTreeRssKiB,
  processTree,
  runWrk,
  stopChild,
  targetEnv,
  treeCpuSeconds,
  treeSyscalls,
  type WrkResult,
} from './lib.ts';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    bodies: { type: 'string', default: '100,65536' },
    workers: { type: 'string', default: '1' },
    soak: { type: 'string', default: '0' },
    rounds: { type: 'string', default: '1' },
    base: { type: 'string' },
    memory: { type: 'boolean', default: false },
    targets: { type: 'string', default: 'nginx,haproxy,undici,tiergate' },
    out: { type: 'string', default: join(root, 'loadtest', 'results') },
  },
});
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const CONNS = Number(args.connections);
const BODIES = args.bodies.split(',').map(Number);
const WORKERS = Number(args.workers);
const SOAK = Number(args.soak);
const ROUNDS = Number(args.rounds);
const TARGETS = args.targets.split(',');
const MEMORY = args.memory;
const RUN_ID = `proxy-bench-${new Date().toISOString().replace(/[:.]/g, '-')}`;
/**
 * Node flags of a tiergate variant, from its name: `-ss<N>` caps the young generation's semi-space at N MiB
 * (`--max-semi-space-size`, docs/operations.md "Memory"), `-ios<N>` starts the old generation's limit at N MiB
 * (`--initial-old-space-size`; 0 is V8's own first limit), `-hgp<N>` makes each old-generation limit N % above
 * what survived the last mark-compact (`--heap-growing-percent`; V8 otherwise picks 10–300 % by its GC speed),
 * `-mos<N>` caps the old generation at N MiB (`--max-old-space-size`, which also lowers V8's largest growth step),
 * `-nmr` turns V8's memory reducer off (README.md), `-tgc` logs every GC (`--trace-gc`, the proxy's stdout)
 * to a file next to the results, `-prof` writes a V8 CPU profile of the proxy (`--cpu-prof`) into a directory
 * next to the results when it stops (loadtest/cpuprofile-table.ts makes the table of it).
 */
function targetFlags(name: string): string[] {
  const flags: string[] = [];
  const ss = /-ss(\d+)/.exec(name);
  if (ss) flags.push(`--max-semi-space-size=${ss[1]}`);
  const ios = /-ios(\d+)/.exec(name);
  if (ios) flags.push(`--initial-old-space-size=${ios[1]}`);
  const mos = /-mos(\d+)/.exec(name);
  if (mos) flags.push(`--max-old-space-size=${mos[1]}`);
  const hgp = /-hgp(\d+)/.exec(name);
  if (hgp) flags.push(`--heap-growing-percent=${hgp[1]}`);
  if (/-nmr\b/.test(name)) flags.push('--no-memory-reducer');
  if (/-tgc\b/.test(name)) flags.push('--trace-gc');
  if (/-prof\b/.test(name)) flags.push('--cpu-prof', `--cpu-prof-dir=${join(args.out, `${RUN_ID}-${name}`)}`);
  return flags;
}
/** What `tiergate proxy` gives itself, for the bare undici loop too (docs/operations.md "Memory"). */
const PROXY_NODE_FLAGS = [...PROXY_V8_FLAGS];
// One worker: the proxy alone on core 0. More: every core (the machine has 2), shared with wrk and the upstreams.
const PROXY_CORES = WORKERS > 1 ? '0-1' : '0';

const { dir: work, children, start } = benchWorkspace('tg-bench-');

async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      await r.arrayBuffer();
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answered on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

const stop = (c: ChildProcess) => stopChild(c);
const wrk = (url: string, seconds: number) => runWrk({ url, seconds, connections: CONNS });

/** RSS (KiB) of a process and all its descendants. */
function treeRssKiB(pid: number): number {
  return libTreeRssKiB(pid).total;
}

/** Anonymous memory and file-backed RSS (KiB, /proc/PID/smaps_rollup) of a process and its descendants. */
function treeSmapsKiB(pid: number): { anon: number; file: number } {
  let anon = 0;
  let rss = 0;
  for (const p of processTree(pid)) {
    try {
      const rollup = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      rss += Number(/^Rss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      anon += Number(/^Anonymous:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
    } catch {}
  }
  return { anon, file: rss - anon };
}

/** V8's share of the proxy's memory (bytes, summed over workers), from the admin /metrics. */
async function v8MemoryBytes(adminPort: number): Promise<{ heapTotal: number; heapUsed: number; external: number }> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  // prom-client's default metrics, one series per process (`worker` label); the primary's is left out.
  const sum = (name: string) =>
    [...text.matchAll(new RegExp(`^${name}\\{worker="(?!primary")[^"]*"\\} (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
  return {
    heapTotal: sum('nodejs_heap_size_total_bytes'),
    heapUsed: sum('nodejs_heap_size_used_bytes'),
    external: sum('nodejs_external_memory_bytes'),
  };
}

/**
 * Where the peak RSS of one measurement was (`--memory`), MiB: anonymous and file-backed pages at the peak,
 * and V8's heap (committed, used) and external memory at the end of the run. Anonymous memory that is not
 * V8 heap is mostly malloc (glibc arenas, 64 KiB body buffers).
 */
interface MemoryBreakdown {
  anonMiB: number;
  fileMiB: number;
  heapTotalMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
}

type Measured = WrkResult & {
  rssMiB: number;
  memory?: MemoryBreakdown;
  /** The proxy's process tree: CPU µs per completed request, and its CPU use in cores over the window. */
  cpuUsPerReq: number;
  proxyCores: number;
  /** The proxy's read and write system calls per request (/proc/PID/io). */
  readsPerReq: number;
  writesPerReq: number;
  /** Busy fraction of the load side's core (wrk + upstreams) and of the proxy's core 0, over the window. */
  loadCoreBusy: number;
  proxyCoreBusy: number;
  /** 1-minute load average at the end of the window (the machine is shared). */
  loadAvg: number;
  /** The load side was > 85 % busy: req/s is the load side's limit, only cpuUsPerReq compares. */
  loadBound: boolean;
};

const mib = (kib: number) => Math.round(kib / 102.4) / 10;
/** Above this the load side's core limits the rate (the issue #19 rule). */
const LOAD_BOUND = 0.85;
const LOAD_CORE = 1;

async function measure(t: Target, url: string, seconds: number): Promise<Measured> {
  const pid = t.proc.pid as number;
  let peak = 0;
  let atPeak = { anon: 0, file: 0 };
  const sample = () => {
    const rss = treeRssKiB(pid);
    if (rss <= peak) return;
    peak = rss;
    if (MEMORY) atPeak = treeSmapsKiB(pid);
  };
  const sampler = setInterval(sample, 250);
  try {
    const cpu0 = treeCpuSeconds(pid);
    const io0 = treeSyscalls(pid);
    const load0 = coreJiffies(LOAD_CORE);
    const core0 = coreJiffies(0);
    const started = performance.now();
    const r = await wrk(url, seconds);
    const wall = (performance.now() - started) / 1000;
    const cpu = treeCpuSeconds(pid) - cpu0;
    const io = treeSyscalls(pid);
    const loadCoreBusy = busyFraction(load0, coreJiffies(LOAD_CORE));
    const proxyCoreBusy = busyFraction(core0, coreJiffies(0));
    sample();
    const m = {
      ...r,
      rssMiB: mib(peak),
      cpuUsPerReq: r.requests > 0 ? (cpu * 1e6) / r.requests : Number.NaN,
      proxyCores: cpu / wall,
      readsPerReq: (io.reads - io0.reads) / r.requests,
      writesPerReq: (io.writes - io0.writes) / r.requests,
      loadCoreBusy,
      proxyCoreBusy,
      loadAvg: loadavg()[0] as number,
      loadBound: loadCoreBusy > LOAD_BOUND,
    };
    if (!MEMORY || t.admin === undefined) return m;
    const v8 = await v8MemoryBytes(t.admin);
    const memory = {
      anonMiB: mib(atPeak.anon),
      fileMiB: mib(atPeak.file),
      heapTotalMiB: mib(v8.heapTotal / 1024),
      heapUsedMiB: mib(v8.heapUsed / 1024),
      externalMiB: mib(v8.external / 1024),
    };
    return { ...m, memory };
  } finally {
    clearInterval(sampler);
  }
}

function memoryLine(m: MemoryBreakdown | undefined): string {
  if (!m) return '';
  return `\n${' '.repeat(16)}at peak: anon ${m.anonMiB} MiB, file ${m.fileMiB} MiB; V8 heap ${m.heapTotalMiB} MiB (used ${m.heapUsedMiB}), external ${m.externalMiB} MiB`;
}

// ---------------------------------------------------------------- upstreams: one nginx, two ports, fixed bodies

const up = [await freePort(), await freePort()];
mkdirSync(join(work, 'www'));
for (const size of BODIES) writeFileSync(join(work, 'www', `b${size}`), 'x'.repeat(size));
// The tiergate target's active health check (as examples/local-stack.yaml's demo apps answer /healthz).
writeFileSync(join(work, 'www', 'healthz'), 'ok\n');
const nginxCommon = `pid PIDFILE; error_log ${work}/ERRLOG warn; daemon off;
events { worker_connections 4096; }`;
function nginxConf(name: string, body: string): string {
  const file = join(work, `${name}.conf`);
  writeFileSync(file, `${nginxCommon.replace('PIDFILE', join(work, `${name}.pid`)).replace('ERRLOG', `${name}.err`)}\n${body}\n`);
  return file;
}
const upstreamConf = nginxConf(
  'upstream',
  `worker_processes 1;
http { access_log off; keepalive_requests 100000;
  ${up.map((p) => `server { listen 127.0.0.1:${p}; root ${work}/www; location / { default_type text/plain; } }`).join('\n  ')}
}`,
);
start('nginx', ['-c', upstreamConf, '-p', work], 1);
await waitForPort(up[0] as number);
await waitForPort(up[1] as number);

// ---------------------------------------------------------------- targets

interface Target {
  name: string;
  port: number;
  /** tiergate's admin port (/metrics). */
  admin?: number;
  proc: ChildProcess;
}

async function startTarget(name: string): Promise<Target> {
  const port = await freePort();
  if (name === 'nginx') {
    const conf = nginxConf(
      'proxy',
      `worker_processes ${WORKERS};
http { access_log off; keepalive_requests 100000;
  upstream app { server 127.0.0.1:${up[0]}; server 127.0.0.1:${up[1]}; keepalive 32; }
  server { listen 127.0.0.1:${port};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $host; proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; } } }`,
    );
    const proc = start('nginx', ['-c', conf, '-p', work], PROXY_CORES);
    await waitForPort(port);
    return { name, port, proc };
  }
  if (name === 'haproxy') {
    const cfg = join(work, 'haproxy.cfg');
    writeFileSync(
      cfg,
      `global
  nbthread ${WORKERS}
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 60s
  timeout http-keep-alive 75s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${port}
  option forwardfor
  http-request set-header X-Real-IP %[src]
  http-request set-header X-Forwarded-Proto http
  default_backend app
backend app
  balance roundrobin
  http-reuse always
  server a 127.0.0.1:${up[0]}
  server b 127.0.0.1:${up[1]}
`,
    );
    const proc = start('haproxy', ['-db', '-f', cfg], PROXY_CORES);
    await waitForPort(port);
    return { name, port, proc };
  }
  if (/^undici\b/.test(name)) {
    const proc = start(
      process.execPath,
      [
        ...PROXY_NODE_FLAGS,
        ...targetFlags(name),
        join(root, 'loadtest', /-lean\b/.test(name) ? 'bare-lean-proxy.ts' : 'bare-undici-proxy.ts'),
        String(port),
        // `-direct`: no upstream, the loop answers by itself (its server side alone).
        ...(/-direct\b/.test(name) ? [] : [String(up[0]), String(up[1])]),
      ],
      PROXY_CORES,
      { ...process.env, ...PROXY_MALLOC_ENV },
    );
    await waitForPort(port);
    return { name, port, proc };
  }
  const admin = await freePort();
  const cfg = join(work, `${name}.yaml`);
  // examples/local-stack.yaml's proxy, on the benchmark's ports, access log and tracing off (`-log`: access log on).
  writeFileSync(
    cfg,
    `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: ${port} }]
  admin: { address: 127.0.0.1, port: ${admin} }
  workers: ${WORKERS}
  access_log: ${/-log\b/.test(name)}
  # As the nginx targets (keepalive_requests 100000): wrk's connections are not reopened mid-run.
  limits: { keepalive_requests: 100000 }
  trusted_proxies: [127.0.0.0/8, "::1"]
  pools:
    app:
      algorithm: round_robin
      servers: [{ address: "127.0.0.1:${up[0]}" }, { address: "127.0.0.1:${up[1]}" }]
      health_check: { type: http, path: /healthz, interval: 2s, timeout: 1s }
telemetry:
  tracing: { enabled: false }
`,
  );
  const nodeFlags = targetFlags(name);
  let stdout: number | 'ignore' = 'ignore';
  if (nodeFlags.includes('--trace-gc')) {
    mkdirSync(args.out, { recursive: true });
    const log = join(args.out, `${RUN_ID}-${name}.gc.log`);
    stdout = openSync(log, 'w');
    console.log(`${name}: GC trace in ${log}`);
  }
  const proc = start(
    process.execPath,
    [
      ...nodeFlags,
      join(/-base\b/.test(name) ? resolve(args.base ?? '--base DIR is needed') : root, 'packages/cli/bin/tiergate.js'),
      'proxy',
      '-c',
      cfg,
    ],
    PROXY_CORES,
    targetEnv(name, {}),
    stdout,
  );
  if (typeof stdout === 'number') closeSync(stdout);
  await waitForPort(port);
  return { name, port, admin, proc };
}

const results: Record<string, Record<number, Measured>> = {};
const soaks: Record<string, unknown> = {};
const cpus = WORKERS > 1 ? 'all cores' : 'core 0';
console.log(
  `proxy benchmark: ${CONNS} connections, ${DURATION}s per run after ${WARMUP}s warm-up, ${WORKERS} worker(s) on ${cpus}, wrk on core 1`,
);
const rounds: Record<string, Record<number, Measured[]>> = {};
for (let round = 1; round <= ROUNDS; round++) {
  if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`);
  for (const name of TARGETS) {
    const t = await startTarget(name);
    let profiled = 0;
    rounds[name] ??= {};
    for (const size of BODIES) {
      const url = `http://127.0.0.1:${t.port}/b${size}`;
      profiled += (await wrk(url, WARMUP)).requests;
      const r = await measure(t, url, DURATION);
      profiled += r.requests;
      const bySize = rounds[name] as Record<number, Measured[]>;
      bySize[size] ??= [];
      bySize[size].push(r);
      console.log(
        `${name.padEnd(14)} ${String(size).padStart(6)} B  ${r.cpuUsPerReq.toFixed(1).padStart(6)} µs CPU/req  ${r.rps.toFixed(0).padStart(6)} req/s  proxy ${(r.proxyCores * 100).toFixed(0)} % of a core  syscalls/req r ${r.readsPerReq.toFixed(2)} w ${r.writesPerReq.toFixed(2)}  load core ${(r.loadCoreBusy * 100).toFixed(0)} %  p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms  RSS ${r.rssMiB} MiB  loadavg ${r.loadAvg.toFixed(1)}  errors ${r.errors} non-2xx ${r.non2xx}${memoryLine(r.memory)}`,
      );
      if (r.loadBound)
        console.log(
          `  WARNING: the load side's core was ${(r.loadCoreBusy * 100).toFixed(0)} % busy (> ${LOAD_BOUND * 100} %): wrk and the upstreams set this rate, so its req/s and p99 do not compare; CPU per request does`,
        );
    }
    if (SOAK > 0 && round === 1 && name !== 'nginx' && name !== 'haproxy') {
      // Drift check: the same load for SOAK seconds in 30 s slices; report the first and last slice.
      const url = `http://127.0.0.1:${t.port}/b${BODIES[0]}`;
      const slices: number[] = [];
      const rss: number[] = [];
      const p99: number[] = [];
      const memory: (MemoryBreakdown | undefined)[] = [];
      for (let left = SOAK; left > 0; left -= 30) {
        const r = await measure(t, url, Math.min(30, left));
        slices.push(r.rps);
        rss.push(r.rssMiB);
        p99.push(r.p99ms);
        memory.push(r.memory);
        if (MEMORY) console.log(`${name} soak slice ${slices.length}: RSS ${r.rssMiB} MiB${memoryLine(r.memory)}`);
      }
      console.log(
        `${name} soak ${SOAK}s: req/s per 30 s slice ${slices.map((s) => s.toFixed(0)).join(' ')}; p99 ms ${p99.map((s) => s.toFixed(1)).join(' ')}; RSS MiB ${rss.join(' ')}`,
      );
      soaks[name] = { slices, rss, p99, memory };
    }
    await stop(t.proc);
    if (/-prof\b/.test(name)) {
      // Every request the profile saw: the warm-ups' and the measured runs' (wrk counts both the same way).
      console.log(`${name}: CPU profile in ${join(args.out, `${RUN_ID}-${name}`)}; requests served while profiling: ${profiled}`);
    }
  }
}
// Each target's round with the median CPU per request (the lower middle one of an even count).
for (const [name, bySize] of Object.entries(rounds)) {
  results[name] = {};
  for (const [size, runs] of Object.entries(bySize)) {
    const sorted = [...runs].sort((a, b) => a.cpuUsPerReq - b.cpuUsPerReq);
    (results[name] as Record<number, Measured>)[Number(size)] = sorted[Math.floor((sorted.length - 1) / 2)]!;
  }
  if (soaks[name]) (results[name] as Record<string, unknown>).soak = soaks[name];
}
if (ROUNDS > 1) {
  console.log(`\nmedian of ${ROUNDS} rounds (CPU µs per request; all rounds):`);
  for (const [name, bySize] of Object.entries(rounds))
    for (const [size, runs] of Object.entries(bySize))
      console.log(
        `${name.padEnd(14)} ${size.padStart(6)} B  ${(results[name] as Record<number, Measured>)[Number(size)]!.cpuUsPerReq.toFixed(1).padStart(6)}  (${runs.map((r) => r.cpuUsPerReq.toFixed(1)).join(', ')})`,
      );
}

if (results.nginx) {
  // The ratio that holds: nginx's CPU per request over the target's (1.00 = as lean as nginx; 0.40 = 2.5× its CPU).
  console.log(
    "\nratio to nginx: CPU per request (nginx µs / target µs; the target spends 1/ratio × nginx's CPU); req/s and p99 as multiples",
  );
  for (const name of TARGETS.filter((n) => n !== 'nginx')) {
    for (const size of BODIES) {
      const a = results[name]?.[size];
      const b = results.nginx[size];
      if (a && b)
        console.log(
          `${name.padEnd(14)} ${String(size).padStart(6)} B  CPU/req ${(b.cpuUsPerReq / a.cpuUsPerReq).toFixed(2)} × (${(a.cpuUsPerReq / b.cpuUsPerReq).toFixed(2)}× nginx's CPU)   req/s ${(a.rps / b.rps).toFixed(2)} ×${a.loadBound || b.loadBound ? ' (load-bound: not valid)' : ''}   p99 ${(a.p99ms / b.p99ms).toFixed(2)} ×`,
        );
    }
  }
}
mkdirSync(args.out, { recursive: true });
const outFile = join(args.out, `${RUN_ID}.json`);
const nginxVersion = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim();
const haproxyVersion = spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0]?.trim();
writeFileSync(
  outFile,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      nginxVersion,
      haproxyVersion,
      node: process.version,
      connections: CONNS,
      duration: DURATION,
      workers: WORKERS,
      results,
    },
    null,
    2,
  ),
);
console.log(`\nresults: ${outFile}`);
for (const c of children) await stop(c);

/**
 * What tracing costs the proxy: throughput and latency with tracing off, at 100 % and at 1 % sampling, one
 * proxy process per variant, the variants interleaved over several rounds so that drift on a shared machine
 * hits all of them alike. Reports the median req/s per variant and its cost relative to `off`, and the median of each
 * round's cost against that round's `off`.
 *
 *   node loadtest/tracing-bench.ts [--duration 8] [--warmup 2] [--rounds 3] [--connections 50] [--variants off,1,0.01]
 *                                  [--node-flags='--max-semi-space-size=4 ...'] [--child-log FILE]
 *
 * A variant is `off` (no SDK loaded) or a sampling ratio (SDK on, OTLP/HTTP protobuf export, from the exporter
 * thread); a ratio with an `i` after it (`0.01i`) exports inline, from the serving thread, to compare. The spans go to a
 * sink in this process that accepts each export with 200 and an empty ExportTraceServiceResponse without decoding
 * it (decoding would compete with wrk for core 1; the testkit receiver is for correctness, not load).
 * CPU placement (2 cores): the proxy on core 0; wrk and the upstream nginx on core 1.
 * Loopback only; every run is bounded by --duration. Performance is measured here, never asserted.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    variants: { type: 'string', default: 'off,1,0.01' },
    // Extra node flags for the proxy processes (e.g. `--trace-gc`), and a file their stdout is copied to.
    // The default is the young-generation cap `tiergate proxy` workers run with (PROXY_V8_FLAGS, cli primary.ts).
    'node-flags': { type: 'string', default: '--max-semi-space-size=4' },
    'child-log': { type: 'string' },
  },
});
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const ROUNDS = Number(args.rounds);
const CONNS = Number(args.connections);
const VARIANTS = args.variants.split(',');

const work = mkdtempSync(join(tmpdir(), 'tg-trace-bench-'));
// nginx workers run as an unprivileged user: they must be able to read the body.
chmodSync(work, 0o755);
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
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
const sink = createServer((req, res) => {
  req.on('data', (c: Buffer) => (exportBytes += c.length));
  req.on('end', () => {
    exports++;
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
start(['nginx', '-c', conf, '-p', work], '1');

// ---------------------------------------------------------------- one proxy per variant

async function startVariant(variant: string): Promise<{ proc: ChildProcess; port: number }> {
  const config = {
    version: 1,
    proxy: {
      listeners: [{ address: '127.0.0.1', port: 0 }],
      access_log: false,
      pools: { app: { servers: [{ address: `127.0.0.1:${upPort}` }] } },
    },
    telemetry: {
      tracing: variant === 'off' ? { enabled: false } : { enabled: true, endpoint: sinkUrl, sampling_ratio: Number.parseFloat(variant) },
    },
  };
  const flags = args['node-flags'].split(' ').filter((f) => f !== '');
  const proc = start(
    [
      process.execPath,
      ...flags,
      join(root, 'loadtest/tracing-bench-proxy.ts'),
      JSON.stringify(config),
      variant.endsWith('i') ? 'inline' : 'thread',
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

const rps = new Map<string, number[]>(VARIANTS.map((v) => [v, []]));
const cpuUs = new Map<string, number[]>(VARIANTS.map((v) => [v, []]));
console.log(`tracing benchmark: ${CONNS} connections, ${DURATION}s per run after ${WARMUP}s warm-up, ${ROUNDS} rounds; proxy on core 0`);
for (let round = 1; round <= ROUNDS; round++) {
  for (const variant of VARIANTS) {
    const { proc, port } = await startVariant(variant);
    const url = `http://127.0.0.1:${port}/b100`;
    await wrk(url, WARMUP);
    const before = exports;
    const cpuBefore = cpuSeconds(proc.pid!);
    const coresBefore = coreTimes();
    const r = await wrk(url, DURATION);
    const cores = coreReport(coresBefore, coreTimes());
    const us = ((cpuSeconds(proc.pid!) - cpuBefore) / r.requests) * 1e6;
    // SIGTERM flushes what is batched (tracing-bench-proxy.ts): once the proxy has exited, the run's spans are counted.
    await stop(proc);
    const exported = exports - before;
    rps.get(variant)!.push(r.rps);
    cpuUs.get(variant)!.push(us);
    console.log(
      `round ${round} ${variant.padEnd(5)} ${r.rps.toFixed(0).padStart(7)} req/s  ${us.toFixed(1).padStart(6)} µs CPU/req  ` +
        `p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms  errors ${r.errors}  exports ${exported}  (${cores})`,
    );
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cost = (base: number | undefined, m: number, sign: 1 | -1): string =>
  base ? `${((sign * (base - m) * 100) / base).toFixed(1).padStart(5)} %` : '';
const baseRps = rps.has('off') ? median(rps.get('off')!) : undefined;
const baseCpu = cpuUs.has('off') ? median(cpuUs.get('off')!) : undefined;
console.log('\nmedians: req/s (throughput lost vs off)   CPU µs/req (CPU added vs off)');
for (const variant of VARIANTS) {
  const r = median(rps.get(variant)!);
  const c = median(cpuUs.get(variant)!);
  console.log(
    `${variant.padEnd(5)} ${r.toFixed(0).padStart(7)} (${cost(baseRps, r, 1)})   ${c.toFixed(1).padStart(6)} (${cost(baseCpu, c, -1)})`,
  );
}
if (rps.has('off') && ROUNDS > 1) {
  // Each round's cost against the same round's `off`: drift between rounds cancels out of these.
  console.log("\nper round, throughput lost vs that round's off: median [range]");
  const off = rps.get('off')!;
  for (const variant of VARIANTS) {
    if (variant === 'off') continue;
    const costs = rps.get(variant)!.map((r, i) => ((off[i]! - r) * 100) / off[i]!);
    const sorted = [...costs].sort((a, b) => a - b);
    console.log(
      `${variant.padEnd(5)} ${median(costs).toFixed(1).padStart(5)} %  [${sorted[0]!.toFixed(1)} … ${sorted.at(-1)!.toFixed(1)}]  ` +
        `rounds: ${costs.map((c) => c.toFixed(1)).join(' ')}`,
    );
  }
}
console.log(`OTLP sink: ${exports} export requests, ${(exportBytes / 1e6).toFixed(1)} MB`);
sink.close();
for (const c of children) await stop(c);

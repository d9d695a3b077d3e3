/**
 * Side-by-side proxy benchmark: `tiergate proxy` and Debian's nginx, proxying to the same two upstreams,
 * driven by the same load generator (wrk), one after the other in one run. Reports req/s, p50/p99
 * latency and RSS per target, and each target's ratio to nginx.
 *
 *   node loadtest/proxy-bench.ts [--duration 10] [--connections 50] [--bodies 100,65536] [--workers 1]
 *                                [--soak 0] [--targets nginx,tiergate,tiergate-nmr]
 *
 * CPU placement (2 cores): the proxy under test on core 0, wrk and the upstream nginx on core 1.
 * Targets: `nginx` (1 worker, upstream keepalive 32, the same forwarding headers), `tiergate` (default flags),
 * `tiergate-nmr` (node --no-memory-reducer: see V8's memory reducer note in loadtest/README.md), `tiergate-ss<N>`
 * (node --max-semi-space-size=N: the young-generation cap of docs/operations.md "Memory"; `workers: 1` runs in
 * the launched process, which gets no flag otherwise), and the two combined as `tiergate-ss<N>-nmr`.
 * Loopback only; every run is bounded by --duration. Not part of `npm test`: performance is measured, not asserted.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '@tiergate/testkit';
import { runWrk, stopChild, type WrkResult } from './lib.ts';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    bodies: { type: 'string', default: '100,65536' },
    workers: { type: 'string', default: '1' },
    soak: { type: 'string', default: '0' },
    targets: { type: 'string', default: 'nginx,tiergate,tiergate-nmr' },
    out: { type: 'string', default: join(root, 'loadtest', 'results') },
  },
});
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const CONNS = Number(args.connections);
const BODIES = args.bodies.split(',').map(Number);
const WORKERS = Number(args.workers);
const SOAK = Number(args.soak);
const TARGETS = args.targets.split(',');
/**
 * Node flags of a tiergate variant, from its name: `-ss<N>` caps the young generation's semi-space at N MiB
 * (`--max-semi-space-size`, docs/operations.md "Memory"), `-ios<N>` starts the old generation's limit at N MiB
 * (`--initial-old-space-size`: the first mark-compact comes sooner), `-nmr` turns V8's memory reducer off
 * (README.md).
 */
function targetFlags(name: string): string[] {
  const flags: string[] = [];
  const ss = /-ss(\d+)/.exec(name);
  if (ss) flags.push(`--max-semi-space-size=${ss[1]}`);
  const ios = /-ios(\d+)/.exec(name);
  if (ios) flags.push(`--initial-old-space-size=${ios[1]}`);
  if (name.endsWith('-nmr')) flags.push('--no-memory-reducer');
  return flags;
}
// One worker: the proxy alone on core 0. More: every core (the machine has 2), shared with wrk and the upstreams.
const PROXY_CORES = WORKERS > 1 ? '0-1' : '0';

const work = mkdtempSync(join(tmpdir(), 'tg-bench-'));
// nginx workers run as an unprivileged user: they must be able to read the bodies.
chmodSync(work, 0o755);
const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (!process.env.TG_BENCH_KEEP) rmSync(work, { recursive: true, force: true });
});

async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/b100`);
      await r.arrayBuffer();
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answered on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

const stop = (c: ChildProcess) => stopChild(c);
const wrk = (url: string, seconds: number) => runWrk({ url, seconds, connections: CONNS });

function start(cmd: string, argv: string[], core: number | string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const c = spawn('taskset', ['-c', String(core), cmd, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  c.stderr?.on('data', (d) => (err = (err + d).slice(-4000)));
  c.on('exit', (code) => {
    if (code && code !== 0) console.error(`${cmd} exited ${code}: ${err}`);
  });
  children.push(c);
  return c;
}

/** RSS (KiB) of a process and all its descendants. */
function treeRssKiB(pid: number): number {
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop() as number;
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      total += Number(m?.[1] ?? 0);
      for (const t of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) stack.push(Number(t));
    } catch {}
  }
  return total;
}

async function measure(pid: number, url: string, seconds: number): Promise<WrkResult & { rssMiB: number }> {
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, treeRssKiB(pid))), 250);
  try {
    const r = await wrk(url, seconds);
    return { ...r, rssMiB: Math.round(Math.max(peak, treeRssKiB(pid)) / 102.4) / 10 };
  } finally {
    clearInterval(sampler);
  }
}

// ---------------------------------------------------------------- upstreams: one nginx, two ports, fixed bodies

const up = [await freePort(), await freePort()];
mkdirSync(join(work, 'www'));
for (const size of BODIES) writeFileSync(join(work, 'www', `b${size}`), 'x'.repeat(size));
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
  const admin = await freePort();
  const cfg = join(work, `${name}.yaml`);
  writeFileSync(
    cfg,
    `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: ${port} }]
  admin: { address: 127.0.0.1, port: ${admin} }
  workers: ${WORKERS}
  access_log: false
  pools:
    app:
      algorithm: weighted
      servers: [{ address: "127.0.0.1:${up[0]}" }, { address: "127.0.0.1:${up[1]}" }]
`,
  );
  const nodeFlags = targetFlags(name);
  const proc = start(process.execPath, [...nodeFlags, join(root, 'packages/cli/bin/tiergate.js'), 'proxy', '-c', cfg], PROXY_CORES);
  await waitForPort(port);
  return { name, port, proc };
}

const results: Record<string, Record<number, WrkResult & { rssMiB: number }>> = {};
const cpus = WORKERS > 1 ? 'all cores' : 'core 0';
console.log(
  `proxy benchmark: ${CONNS} connections, ${DURATION}s per run after ${WARMUP}s warm-up, ${WORKERS} worker(s) on ${cpus}, wrk on core 1`,
);
for (const name of TARGETS) {
  const t = await startTarget(name);
  results[name] = {};
  for (const size of BODIES) {
    const url = `http://127.0.0.1:${t.port}/b${size}`;
    await wrk(url, WARMUP);
    const r = await measure(t.proc.pid as number, url, DURATION);
    (results[name] as Record<number, unknown>)[size] = r;
    console.log(
      `${name.padEnd(14)} ${String(size).padStart(6)} B  ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50ms.toFixed(2)} ms  p99 ${r.p99ms.toFixed(2)} ms  RSS ${r.rssMiB} MiB  errors ${r.errors} non-2xx ${r.non2xx}`,
    );
  }
  if (SOAK > 0 && name !== 'nginx') {
    // Drift check: the same load for SOAK seconds in 30 s slices; report the first and last slice.
    const url = `http://127.0.0.1:${t.port}/b${BODIES[0]}`;
    const slices: number[] = [];
    const rss: number[] = [];
    for (let left = SOAK; left > 0; left -= 30) {
      const r = await measure(t.proc.pid as number, url, Math.min(30, left));
      slices.push(r.rps);
      rss.push(r.rssMiB);
    }
    console.log(`${name} soak ${SOAK}s: req/s per 30 s slice ${slices.map((s) => s.toFixed(0)).join(' ')}; RSS MiB ${rss.join(' ')}`);
    (results[name] as Record<string, unknown>).soak = { slices, rss };
  }
  await stop(t.proc);
}

if (results.nginx) {
  console.log('\nratio to nginx (req/s; p99 as multiple of nginx p99):');
  for (const name of TARGETS.filter((n) => n !== 'nginx')) {
    for (const size of BODIES) {
      const a = results[name]?.[size];
      const b = results.nginx[size];
      if (a && b)
        console.log(
          `${name.padEnd(14)} ${String(size).padStart(6)} B  ${(a.rps / b.rps).toFixed(2)} × req/s   p99 ${(a.p99ms / b.p99ms).toFixed(2)} ×`,
        );
    }
  }
}
mkdirSync(args.out, { recursive: true });
const outFile = join(args.out, `proxy-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
const nginxVersion = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim();
writeFileSync(
  outFile,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      nginxVersion,
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

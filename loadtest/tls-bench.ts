/**
 * HTTPS benchmark: `tiergate proxy` and Debian's nginx terminating TLS in front of the same two upstreams, one
 * after the other in one run: HTTPS/1.1 with wrk, HTTP/2 with h2load (nghttp2-client). Reports req/s, p99, the
 * CPU time the proxy's process tree spent per request (from /proc), peak RSS, and each tiergate target's ratio
 * to nginx.
 *
 *   node loadtest/tls-bench.ts [--duration 10] [--warmup 3] [--connections 50] [--h2-clients 10] [--h2-streams 5]
 *                              [--bodies 100,65536] [--targets nginx,tiergate,tiergate-h1only,nginx-cleartext,tiergate-cleartext] [--protocols h1,h2]
 *                              [--rounds 1] [--base DIR]
 *
 * CPU placement (2 cores): the proxy under test on core 0 (one worker), the load generator and the upstream
 * nginx on core 1. Targets: `nginx` (1 worker, `listen … ssl`, `http2 on`, upstream keepalive 32, the same
 * forwarding headers), `tiergate` (a TLS listener: h2 and http/1.1 by ALPN on node:http2), `tiergate-h1only`
 * (`http2: false`: node:https, HTTP/1.1 only; its h2 run is skipped), to see what node:http2's HTTP/1.1
 * fallback costs; `nginx-cleartext` and `tiergate-cleartext` serve plain HTTP/1.1, to see what TLS adds to
 * each (their ratio is to each other); `tiergate-base` runs the tiergate of another checkout (`--base DIR`, as in
 * proxy-bench.ts; with the base's own V8 flags and malloc settings) for a before/after in one run; `-arena<N>`,
 * `-mmap<K>`, `-trim<K>` suffixes set a malloc setting (lib.ts targetEnv), `-hgp<N>` V8's heap growing percent, `-ss<N>` its
 * semi-space size (MiB), `-ios<N>` its old generation's first limit (MiB), `-syncab`
 * array buffers freed by the GC rather than a concurrent sweeper, `-stgc` V8's GC on the main thread only,
 * `-pretenure` turns V8's allocation-site pretenuring back on, `-nomsm` V8's memory saver mode off, and `-minss<N>`
 * sets the young generation's first semi-space size (MiB); a `-nodeh1` suffix (`tiergate-nodeh1`, `tiergate-h1only-nodeh1`)
 * serves HTTP/1.1 through node's server (`http1_server: node`) instead of the lean one; a `-prof` suffix (`tiergate-prof`, `tiergate-base-prof`)
 * writes a V8 CPU profile of the proxy next to the results (loadtest/cpuprofile-table.ts), `-tgc` its
 * `--trace-gc-nvp` log, summed up as bytes promoted per request. `--rounds N` runs
 * every target N times, interleaved, and reports each one's median round by CPU per request. Both sides use an ECDSA P-256 certificate made by openssl for the run and their default TLS
 * settings (TLS 1.3 on loopback). HTTP/2 load: `--h2-clients` connections × `--h2-streams` streams each, as
 * many requests in flight as wrk's `--connections`. h2load prints no percentiles: p99 comes from its
 * `--log-file` (one line per request). Loopback only; every run is bounded by --duration. Not part of
 * `npm test`: performance is measured, not asserted.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '@tiergate/testkit';
import { benchWorkspace, runWrk, stopChild, targetEnv, treeCpuSeconds, treeRssKiB } from './lib.ts';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    'h2-clients': { type: 'string', default: '10' },
    'h2-streams': { type: 'string', default: '5' },
    bodies: { type: 'string', default: '100,65536' },
    targets: { type: 'string', default: 'nginx,tiergate,tiergate-h1only' },
    protocols: { type: 'string', default: 'h1,h2' },
    rounds: { type: 'string', default: '1' },
    base: { type: 'string' },
    out: { type: 'string', default: join(root, 'loadtest', 'results') },
  },
});
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const CONNS = Number(args.connections);
const H2_CLIENTS = Number(args['h2-clients']);
const H2_STREAMS = Number(args['h2-streams']);
const BODIES = args.bodies.split(',').map(Number);
const TARGETS = args.targets.split(',');
const PROTOCOLS = args.protocols.split(',') as ('h1' | 'h2')[];
const ROUNDS = Number(args.rounds);
const RUN_ID = `tls-bench-${new Date().toISOString().replace(/[:.]/g, '-')}`;
const { dir: work, children, start } = benchWorkspace('tg-tls-bench-');

async function waitFor(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const { Agent, request } = await import('undici');
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    while (Date.now() < deadline) {
      try {
        const r = await request(url, { dispatcher: agent });
        await r.body.arrayBuffer();
        if (r.statusCode === 200) return;
      } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await agent.close();
  }
  throw new Error(`nothing answered ${url} within ${timeoutMs} ms`);
}

interface LoadResult {
  requests: number;
  rps: number;
  p99ms: number;
  errors: number;
  non2xx: number;
}

/** One h2load run (1 thread, on core 1): throughput from its report, p99 from its per-request log. */
async function runH2load(url: string, seconds: number): Promise<LoadResult> {
  const log = join(work, `h2load-${Date.now()}.log`);
  const argv = ['-c', '1', 'h2load', '-t1', `-c${H2_CLIENTS}`, `-m${H2_STREAMS}`, `-D${seconds}`, `--log-file=${log}`, url];
  const c = spawn('taskset', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  c.stderr.on('data', (d) => (out += d));
  const [code] = (await Promise.race([
    once(c, 'close'),
    once(c, 'error').then(([e]) =>
      Promise.reject(new Error(`h2load could not run (apt-get install -y nghttp2-client): ${(e as Error).message}`)),
    ),
  ])) as [number | null];
  if (code !== 0) throw new Error(`h2load exited ${code}: ${out}`);
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (!Number.isFinite(rps) || !req || !status) throw new Error(`h2load's report not understood: ${out}`);
  // --log-file: `start time (µs since the epoch) \t status \t request time (µs)` per request.
  const times = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => Number(l.split('\t')[2]))
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  rmSync(log, { force: true });
  const p99 = times.length > 0 ? (times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] as number) / 1000 : Number.NaN;
  return {
    requests: Number(req[4]),
    rps,
    p99ms: p99,
    errors: Number(req[5]) + Number(req[6]) + Number(req[7]),
    non2xx: Number(status[2]) + Number(status[3]) + Number(status[4]),
  };
}

async function runLoad(protocol: 'h1' | 'h2', url: string, seconds: number): Promise<LoadResult> {
  if (protocol === 'h2') return runH2load(url, seconds);
  const r = await runWrk({ url, seconds, connections: CONNS });
  return { requests: r.requests, rps: r.rps, p99ms: r.p99ms, errors: r.errors, non2xx: r.non2xx };
}

type Measured = LoadResult & { cpuUsPerRequest: number; rssMiB: number; workerRssMiB: number; loadAvg: number };

async function measure(pid: number, protocol: 'h1' | 'h2', url: string, seconds: number): Promise<Measured> {
  let peak = 0;
  let peakWorker = 0;
  const sample = () => {
    const rss = treeRssKiB(pid);
    peak = Math.max(peak, rss.total);
    peakWorker = Math.max(peakWorker, rss.largest);
  };
  const sampler = setInterval(sample, 250);
  const cpu0 = treeCpuSeconds(pid);
  try {
    const r = await runLoad(protocol, url, seconds);
    const cpu = treeCpuSeconds(pid) - cpu0;
    sample();
    const mib = (kib: number) => Math.round(kib / 102.4) / 10;
    return {
      ...r,
      cpuUsPerRequest: (cpu * 1e6) / Math.max(1, r.requests),
      rssMiB: mib(peak),
      workerRssMiB: mib(peakWorker),
      loadAvg: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    };
  } finally {
    clearInterval(sampler);
  }
}

// ---------------------------------------------------------------- certificate, upstreams

const cert = join(work, 'cert.pem');
const key = join(work, 'key.pem');
const openssl = spawnSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert,
  ],
  { encoding: 'utf8' },
);
if (openssl.status !== 0) throw new Error(`openssl could not make the certificate: ${openssl.stderr}`);
chmodSync(key, 0o644);

const up = [await freePort(), await freePort()];
mkdirSync(join(work, 'www'));
for (const size of BODIES) writeFileSync(join(work, 'www', `b${size}`), 'x'.repeat(size));
function nginxConf(name: string, body: string): string {
  const file = join(work, `${name}.conf`);
  writeFileSync(
    file,
    `pid ${join(work, `${name}.pid`)}; error_log ${work}/${name}.err warn; daemon off;\nevents { worker_connections 4096; }\n${body}\n`,
  );
  return file;
}
const upstreamConf = nginxConf(
  'upstream',
  `worker_processes 1;
http { access_log off; keepalive_requests 100000;
  ${up.map((p) => `server { listen 127.0.0.1:${p}; root ${work}/www; location / { default_type text/plain; } }`).join('\n  ')}
}`,
);
start('nginx', ['-c', upstreamConf, '-p', work], '1');
for (const p of up) await waitFor(`http://127.0.0.1:${p}/b${BODIES[0]}`);

// ---------------------------------------------------------------- targets

/** `nginx-cleartext`, `tiergate-cleartext`: the same proxy without TLS (HTTP/1.1 only), for what TLS adds. */
function cleartext(name: string): boolean {
  return name.endsWith('-cleartext');
}

async function startTarget(name: string): Promise<{ port: number; proc: ChildProcess; scheme: string; gcLog?: string }> {
  const port = await freePort();
  const scheme = cleartext(name) ? 'http' : 'https';
  if (name.startsWith('nginx')) {
    const conf = nginxConf(
      'proxy',
      `worker_processes 1;
http { access_log off; keepalive_requests 100000; http2_max_concurrent_streams 128;
  upstream app { server 127.0.0.1:${up[0]}; server 127.0.0.1:${up[1]}; keepalive 32; }
  server { ${cleartext(name) ? `listen 127.0.0.1:${port};` : `listen 127.0.0.1:${port} ssl http2; ssl_certificate ${cert}; ssl_certificate_key ${key};`}
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $host; proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; } } }`,
    );
    const proc = start('nginx', ['-c', conf, '-p', work], '0');
    await waitFor(`${scheme}://127.0.0.1:${port}/b${BODIES[0]}`);
    return { port, proc, scheme };
  }
  const admin = await freePort();
  const cfg = join(work, `${name}.yaml`);
  writeFileSync(
    cfg,
    `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: ${port}${cleartext(name) ? '' : `, tls: { cert: ${cert}, key: ${key} }`}${name.startsWith('tiergate-h1only') ? ', http2: false' : ''}${/-nodeh1\b/.test(name) ? ', http1_server: node' : ''} }]
  admin: { address: 127.0.0.1, port: ${admin} }
  workers: 1
  access_log: false
  # As the nginx target (keepalive_requests 100000): the load's connections are not reopened mid-run.
  limits: { keepalive_requests: 100000 }
  pools:
    app:
      algorithm: weighted
      servers: [{ address: "127.0.0.1:${up[0]}" }, { address: "127.0.0.1:${up[1]}" }]
`,
  );
  const checkout = /-base\b/.test(name) ? resolve(args.base ?? '--base DIR is needed') : root;
  const flags = /-prof\b/.test(name) ? ['--cpu-prof', `--cpu-prof-dir=${join(args.out, `${RUN_ID}-${name}`)}`] : [];
  // V8 variants (given after the defaults, so they win): `-hgp<N>` --heap-growing-percent=N, `-pretenure` V8's
  // allocation-site pretenuring back on.
  const hgp = /-hgp(\d+)/.exec(name);
  if (hgp) flags.push(`--heap-growing-percent=${hgp[1]}`);
  // `-ss<N>`: the young generation's semi-space capped at N MiB (--max-semi-space-size; the default is 4).
  const ss = /-ss(\d+)/.exec(name);
  if (ss) flags.push(`--max-semi-space-size=${ss[1]}`);
  // `-ios<N>`: the old generation's first limit at N MiB (--initial-old-space-size; the default is 40).
  const ios = /-ios(\d+)/.exec(name);
  if (ios) flags.push(`--initial-old-space-size=${ios[1]}`);
  // `-syncab`: array buffers of dead objects freed by the GC itself, not by a concurrent sweeper thread later.
  if (/-syncab\b/.test(name)) flags.push('--no-concurrent-array-buffer-sweeping');
  // `-stgc`: every GC phase on the main thread (no GC helper threads).
  if (/-stgc\b/.test(name)) flags.push('--single-threaded-gc');
  if (/-pretenure\b/.test(name)) flags.push('--allocation-site-pretenuring');
  // `-nomsm`: V8's memory saver mode off (v8-flags.ts turns it on); `-minss<N>`: the young generation's semi-space
  // at least N MiB (--min-semi-space-size; the default is 4).
  if (/-nomsm\b/.test(name)) flags.push('--no-memory-saver-mode');
  const minss = /-minss(\d+)/.exec(name);
  if (minss) flags.push(`--min-semi-space-size=${minss[1]}`);
  let stdout: number | 'ignore' = 'ignore';
  let gcLog: string | undefined;
  if (/-tgc\b/.test(name)) {
    flags.push('--trace-gc-nvp');
    mkdirSync(args.out, { recursive: true });
    gcLog = join(args.out, `${RUN_ID}-${name}-${++gcLogs}.gc.log`);
    stdout = openSync(gcLog, 'w');
  }
  // The flags and malloc settings `tiergate proxy` would re-execute itself with (the checkout's own v8-flags.ts,
  // so a -base target runs with the base's), given up front: a re-executed process does not write the
  // `--cpu-prof` profile of the run. A malloc variant in the name (lib.ts targetEnv) replaces a default.
  const settings = (await import(pathToFileURL(join(checkout, 'packages/cli/src/proxy-runtime/v8-flags.ts')).href)) as {
    PROXY_V8_FLAGS: readonly string[];
    PROXY_MALLOC_ENV: Readonly<Record<string, string>>;
  };
  const proc = start(
    process.execPath,
    [...settings.PROXY_V8_FLAGS, ...flags, join(checkout, 'packages/cli/bin/tiergate.js'), 'proxy', '-c', cfg],
    '0',
    targetEnv(name, settings.PROXY_MALLOC_ENV),
    stdout,
  );
  if (typeof stdout === 'number') closeSync(stdout);
  await waitFor(`${scheme}://127.0.0.1:${port}/b${BODIES[0]}`);
  return { port, proc, scheme, gcLog };
}
let gcLogs = 0;

/** What `--trace-gc-nvp` says of a run: scavenges and mark-compacts, and the bytes scavenges promoted. */
function gcSummary(file: string): { scavenges: number; markCompacts: number; promotedBytes: number } {
  let scavenges = 0;
  let markCompacts = 0;
  let promotedBytes = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const kind = / gc=(\w+) /.exec(line)?.[1];
    if (kind === 's') {
      scavenges++;
      promotedBytes += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0);
    } else if (kind === 'mc' || kind === 'mmc') markCompacts++;
  }
  return { scavenges, markCompacts, promotedBytes };
}

const rounds: Record<string, Record<string, Measured[]>> = {};
console.log(
  `TLS benchmark: HTTPS/1.1 wrk ${CONNS} connections; HTTP/2 h2load ${H2_CLIENTS} connections × ${H2_STREAMS} streams; ` +
    `${DURATION}s per run after ${WARMUP}s warm-up; one proxy worker on core 0, load on core 1`,
);
for (let round = 1; round <= ROUNDS; round++) {
  if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`);
  for (const name of TARGETS) {
    const t = await startTarget(name);
    rounds[name] ??= {};
    let profiled = 0;
    for (const protocol of PROTOCOLS) {
      if (protocol === 'h2' && (name.startsWith('tiergate-h1only') || cleartext(name))) continue;
      for (const size of BODIES) {
        const url = `${t.scheme}://127.0.0.1:${t.port}/b${size}`;
        profiled += (await runLoad(protocol, url, WARMUP)).requests;
        const r = await measure(t.proc.pid as number, protocol, url, DURATION);
        profiled += r.requests;
        const byKey = rounds[name] as Record<string, Measured[]>;
        byKey[`${protocol}-${size}`] ??= [];
        byKey[`${protocol}-${size}`]!.push(r);
        console.log(
          `${name.padEnd(16)} ${protocol} ${String(size).padStart(6)} B  ${r.rps.toFixed(0).padStart(7)} req/s  p99 ${r.p99ms.toFixed(2)} ms  ` +
            `CPU ${r.cpuUsPerRequest.toFixed(0)} µs/req  RSS ${r.rssMiB} MiB (largest process ${r.workerRssMiB})  loadavg ${r.loadAvg.toFixed(1)}  errors ${r.errors} non-2xx ${r.non2xx}`,
        );
      }
    }
    // A profiled proxy writes its profile as it exits: give it time.
    await stopChild(t.proc, 20_000);
    if (/-prof\b/.test(name))
      console.log(`${name}: CPU profile in ${join(args.out, `${RUN_ID}-${name}`)}; requests served while profiling: ${profiled}`);
    if (t.gcLog) {
      const gc = gcSummary(t.gcLog);
      console.log(
        `${name}: ${gc.scavenges} scavenges, ${gc.markCompacts} mark-compacts, ${(gc.promotedBytes / Math.max(1, profiled)).toFixed(0)} bytes promoted per request (${profiled} requests, warm-ups included; ${t.gcLog})`,
      );
    }
  }
}
// Each target's round with the median CPU per request (the lower middle one of an even count).
const results: Record<string, Record<string, Measured>> = {};
for (const [name, byKey] of Object.entries(rounds)) {
  results[name] = {};
  for (const [k, runs] of Object.entries(byKey)) {
    const sorted = [...runs].sort((a, b) => a.cpuUsPerRequest - b.cpuUsPerRequest);
    (results[name] as Record<string, Measured>)[k] = sorted[Math.floor((sorted.length - 1) / 2)]!;
  }
}
if (ROUNDS > 1) {
  console.log(`\nmedian of ${ROUNDS} rounds (CPU µs per request; all rounds as CPU µs / req/s / p99 ms / peak RSS MiB):`);
  for (const [name, byKey] of Object.entries(rounds))
    for (const [k, runs] of Object.entries(byKey))
      console.log(
        `${name.padEnd(16)} ${k.padEnd(9)} ${(results[name] as Record<string, Measured>)[k]!.cpuUsPerRequest.toFixed(1).padStart(6)}  (${runs
          .map((r) => `${r.cpuUsPerRequest.toFixed(0)}/${r.rps.toFixed(0)}/${r.p99ms.toFixed(1)}/${r.rssMiB}`)
          .join(', ')})`,
      );
}

if (results.nginx) {
  console.log('\nratio to nginx (req/s; p99 and CPU per request as multiples of nginx):');
  for (const name of TARGETS.filter((n) => !n.startsWith('nginx'))) {
    for (const [k, a] of Object.entries(results[name] ?? {})) {
      const b = (cleartext(name) ? results['nginx-cleartext'] : results.nginx)?.[k];
      if (b)
        console.log(
          `${name.padEnd(16)} ${k.padEnd(9)} ${(a.rps / b.rps).toFixed(2)} × req/s   p99 ${(a.p99ms / b.p99ms).toFixed(2)} ×   CPU/req ${(a.cpuUsPerRequest / b.cpuUsPerRequest).toFixed(2)} ×`,
        );
    }
  }
}
mkdirSync(args.out, { recursive: true });
const outFile = join(args.out, `${RUN_ID}.json`);
const nginxVersion = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim();
const h2loadVersion = spawnSync('h2load', ['--version'], { encoding: 'utf8' }).stdout.trim();
writeFileSync(
  outFile,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      nginxVersion,
      h2loadVersion,
      node: process.version,
      connections: CONNS,
      h2: { clients: H2_CLIENTS, streams: H2_STREAMS },
      duration: DURATION,
      rounds: ROUNDS,
      results,
      allRounds: rounds,
    },
    null,
    2,
  ),
);
console.log(`\nresults: ${outFile}`);
for (const c of children) await stopChild(c);

/**
 * What the benchmarks in loadtest/ share: a scratch dir and the children to kill on exit, starting a process pinned to
 * a core, stopping it, running wrk, and reading a process tree's CPU time and memory from /proc (free ports come
 * from @tiergate/testkit).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * glibc malloc settings of a tiergate variant, from its name, as environment variables over `base` (the
 * proxy's own, PROXY_MALLOC_ENV): `-arena<N>` (MALLOC_ARENA_MAX: at most N malloc arenas; glibc's own limit is
 * 8 per core, 16 here), `-mmap<K>` (MALLOC_MMAP_THRESHOLD_: blocks of K KiB and more get their own mapping;
 * fixes the threshold, which glibc otherwise raises up to 32 MiB as such blocks are freed), `-trim<K>`
 * (MALLOC_TRIM_THRESHOLD_: free memory at the top of the main heap kept before it is returned). glibc reads
 * them at startup only. `-jemalloc` runs it on jemalloc instead (Debian's libjemalloc2, LD_PRELOAD) with its
 * defaults, `-jemallocbg` with a background thread returning unused pages after 1 s (MALLOC_CONF).
 */
export function targetEnv(name: string, base: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...base };
  const arena = /-arena(\d+)/.exec(name);
  if (arena) env.MALLOC_ARENA_MAX = arena[1];
  const mmap = /-mmap(\d+)/.exec(name);
  if (mmap) env.MALLOC_MMAP_THRESHOLD_ = String(Number(mmap[1]) * 1024);
  const trim = /-trim(\d+)/.exec(name);
  if (trim) env.MALLOC_TRIM_THRESHOLD_ = String(Number(trim[1]) * 1024);
  if (/-jemalloc(bg)?\b/.test(name)) env.LD_PRELOAD = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
  if (/-jemallocbg\b/.test(name)) env.MALLOC_CONF = 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0';
  return env;
}

/** A benchmark's scratch dir and the processes it started: on exit, every one still running is killed, then the dir removed (kept with TG_BENCH_KEEP=1). */
export interface BenchWorkspace {
  readonly dir: string;
  readonly children: ChildProcess[];
  /** `cmd argv` pinned to `core` (taskset), stdout ignored unless given a descriptor, the tail of stderr printed if it exits non-zero. */
  start(cmd: string, argv: string[], core: number | string, env?: NodeJS.ProcessEnv, stdout?: number | 'ignore'): ChildProcess;
}

/** Servers whose master process stops its workers on SIGTERM (spawnargs[3]: the command after `taskset -c N`). */
const MASTERS = new Set(['nginx', 'haproxy']);

export function benchWorkspace(prefix: string): BenchWorkspace {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // nginx workers run as an unprivileged user: they must be able to read the bodies and keys in it.
  chmodSync(dir, 0o755);
  const children: ChildProcess[] = [];
  process.on('exit', () => {
    // nginx and HAProxy get SIGTERM: their masters then stop their workers, which a SIGKILLed master leaves
    // running (an orphaned nginx worker outlived a bench that failed mid-run).
    for (const c of children)
      if (c.exitCode === null && c.signalCode === null) c.kill(MASTERS.has(c.spawnargs[3] ?? '') ? 'SIGTERM' : 'SIGKILL');
    if (!process.env.TG_BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    children,
    start(cmd, argv, core, env = process.env, stdout = 'ignore') {
      const c = spawn('taskset', ['-c', String(core), cmd, ...argv], { stdio: ['ignore', stdout, 'pipe'], env });
      let err = '';
      c.stderr?.on('data', (d) => (err = (err + d).slice(-4000)));
      c.on('exit', (code, signal) => {
        // SIGTERM/SIGKILL are stopChild's and the exit handler's; any other signal is the child's own death.
        if (code || (signal && signal !== 'SIGTERM' && signal !== 'SIGKILL')) console.error(`${cmd} exited ${code ?? signal}: ${err}`);
      });
      children.push(c);
      return c;
    },
  };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited. */
export async function stopChild(c: ChildProcess, graceMs = 5000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const done = once(c, 'exit');
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}

export interface WrkResult {
  requests: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  /** Socket errors (connect, read, write, timeout). */
  errors: number;
  non2xx: number;
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v);
  return m ? Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1) : Number.NaN;
}

/** Reads wrk's `--latency` report. */
export function parseWrk(out: string): WrkResult {
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50ms: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99ms: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    errors: errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
  };
}

/** One wrk run (1 thread, pinned to `core`), bounded by `seconds`. */
export async function runWrk(opts: {
  url: string;
  seconds: number;
  connections: number;
  script?: string;
  core?: string;
  /** Extra request header lines (`Name: value`), e.g. `Connection: close` for a new connection per request. */
  headers?: readonly string[];
}): Promise<WrkResult> {
  const argv = ['-c', opts.core ?? '1', 'wrk', '-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency'];
  if (opts.script) argv.push('-s', opts.script);
  for (const h of opts.headers ?? []) argv.push('-H', h);
  const c = spawn('taskset', [...argv, opts.url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  c.stderr.on('data', (d) => (out += d));
  const [code] = (await Promise.race([
    // 'close', not 'exit': the report is on stdout, which may still be unread when the process has exited.
    once(c, 'close'),
    once(c, 'error').then(([e]) => Promise.reject(new Error(`wrk could not run (apt-get install -y wrk): ${(e as Error).message}`))),
  ])) as [number | null];
  if (code !== 0) throw new Error(`wrk exited ${code}: ${out}`);
  const r = parseWrk(out);
  if (!Number.isFinite(r.rps) || !Number.isFinite(r.requests)) throw new Error(`wrk's report not understood: ${out}`);
  return r;
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux architecture Node ships for). */
const CLK_TCK = 100;

/** The pids of a process and all its descendants (children of any of its threads), from /proc. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop() as number;
    out.push(p);
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) stack.push(Number(c));
      } catch {}
    }
  }
  return out;
}

/** RSS (KiB) of a process tree, and of its largest process (the worker, for tiergate). */
export function treeRssKiB(pid: number): { total: number; largest: number } {
  let total = 0;
  let largest = 0;
  for (const p of processTree(pid)) {
    try {
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
      total += rss;
      largest = Math.max(largest, rss);
    } catch {}
  }
  return { total, largest };
}

/**
 * CPU seconds (user + system, every thread) a process tree has used so far: utime + stime of each process's
 * /proc/PID/stat, which count all of its threads, dead ones included. Two readings around a measured window give
 * the tree's CPU time in that window (a process that started and ended inside the window is missed; a proxy under
 * load forks none).
 */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces), numbered from 3 (state): utime is 14, stime 15.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks / CLK_TCK;
}

/** Read and write system calls (/proc/PID/io syscr, syscw: read, recv, write, writev, send… ) of a process tree so far. */
export function treeSyscalls(pid: number): { reads: number; writes: number } {
  let reads = 0;
  let writes = 0;
  for (const p of processTree(pid)) {
    try {
      const io = readFileSync(`/proc/${p}/io`, 'utf8');
      reads += Number(/^syscr: (\d+)/m.exec(io)?.[1] ?? 0);
      writes += Number(/^syscw: (\d+)/m.exec(io)?.[1] ?? 0);
    } catch {}
  }
  return { reads, writes };
}

/** Busy and total jiffies of one core so far (/proc/stat `cpuN`; idle and iowait are not busy). */
export function coreJiffies(core: number): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${core} `));
  if (!line) return { busy: 0, total: 0 };
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - (v[3] ?? 0) - (v[4] ?? 0), total };
}

/** Fraction (0–1) of a core busy between two coreJiffies readings. */
export function busyFraction(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
}

/** What the benchmarks in loadtest/ share: stopping a child and running wrk (free ports come from @tiergate/testkit). */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

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
}): Promise<WrkResult> {
  const argv = ['-c', opts.core ?? '1', 'wrk', '-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency'];
  if (opts.script) argv.push('-s', opts.script);
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

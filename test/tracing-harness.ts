/**
 * Helpers for the tracing tests: a real `tiergate` command as a child process (launcher + Node 24),
 * config files in a temp dir, W3C traceparent values made up as the proxy would send them, and span
 * tree queries over what an OTLP receiver collected.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CollectedSpan } from '@tiergate/testkit';
import { stringify } from 'yaml';

const ROOT = join(import.meta.dirname, '..');
const LAUNCHER = join(ROOT, 'packages/cli/bin/tiergate.js');
/** Preload that lists the modules a process resolved (see tracing-module-probe.ts). */
export const MODULE_PROBE = join(import.meta.dirname, 'tracing-module-probe.ts');
// A guard against a hung child, not an assertion: far above what a run takes.
const GUARD_MS = 25_000;

/** A temp dir for config files, removed on dispose. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
  /** Writes `doc` as YAML to `<dir>/<name>` and returns its path. */
  write(name: string, doc: unknown): Promise<string>;
}

export async function tempDir(): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), 'tg-tracing-'));
  return {
    path,
    write: async (name, doc) => {
      const file = join(path, name);
      await writeFile(file, stringify(doc));
      return file;
    },
    [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }),
  };
}

/** A running `tiergate …` child: its output so far, a graceful stop, and SIGKILL on dispose. */
export interface TiergateChild extends AsyncDisposable {
  readonly process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` in stdout; rejects if the process ends first. */
  waitForStdout(pattern: RegExp): Promise<RegExpExecArray>;
  /** SIGTERM, then resolves with the exit code once the process is gone. */
  stop(): Promise<number | null>;
}

/** Spawns `node [nodeArgs] tiergate.js ...args`. */
export function spawnTiergate(args: readonly string[], options: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): TiergateChild {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), LAUNCHER, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const guard = setTimeout(() => child.kill('SIGKILL'), GUARD_MS);
  const exited = once(child, 'exit').then(([code]) => {
    clearTimeout(guard);
    return code as number | null;
  });
  const waitForStdout = async (pattern: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      const match = pattern.exec(stdout);
      if (match) return match;
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`tiergate ${args.join(' ')} ended (${child.exitCode ?? child.signalCode}) before ${pattern}:\n${stderr}`);
      await Promise.race([once(child.stdout!, 'data'), exited]);
    }
  };
  return {
    process: child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitForStdout,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
    [Symbol.asyncDispose]: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A new trace id and a `traceparent` maker for it: one parent span id per request, as the proxy's attempts. */
export function newTrace(): { traceId: string; traceparent(): { header: string; parentSpanId: string } } {
  const traceId = randomBytes(16).toString('hex');
  return {
    traceId,
    traceparent: () => {
      const parentSpanId = randomBytes(8).toString('hex');
      return { header: `00-${traceId}-${parentSpanId}-01`, parentSpanId };
    },
  };
}

/** The span's ancestors that `spans` holds, nearest first. */
export function ancestorsOf(span: CollectedSpan, spans: readonly CollectedSpan[]): CollectedSpan[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const chain: CollectedSpan[] = [];
  for (let p = span.parentSpanId && byId.get(span.parentSpanId); p; p = p.parentSpanId && byId.get(p.parentSpanId)) chain.push(p);
  return chain;
}

/** The spans whose ancestors include `root`. */
export function descendantsOf(root: CollectedSpan, spans: readonly CollectedSpan[]): CollectedSpan[] {
  return spans.filter((s) => ancestorsOf(s, spans).some((a) => a.spanId === root.spanId));
}

/** A browser stand-in with one session cookie, sending a `traceparent` when given one. */
export class TracedClient {
  #cookie: string | undefined;

  async call(
    url: string,
    options: { json?: unknown; traceparent?: string } = {},
  ): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#cookie) headers.cookie = this.#cookie;
    if (options.traceparent) headers.traceparent = options.traceparent;
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url, {
      method: options.json === undefined ? 'GET' : 'POST',
      headers,
      body: options.json === undefined ? undefined : JSON.stringify(options.json),
    });
    const session = res.headers.getSetCookie().find((line) => line.startsWith('tg.sid='));
    if (session) this.#cookie = session.split(';')[0];
    const text = await res.text();
    return { status: res.status, body: res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : undefined };
  }
}

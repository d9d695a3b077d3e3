import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** How a child process ended. */
export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A child still running: its first stdout line, its eventual end, and a kill on dispose. */
export interface RunningChild extends AsyncDisposable {
  firstLine: string;
  exited: Promise<ChildResult>;
}

const CHILD_DIR = join(import.meta.dirname, 'child');
// A guard against a hung child, not an assertion: far above what a run takes (well under a second).
const GUARD_MS = 30_000;

function spawnChild(script: string, env: Record<string, string>): { child: ChildProcess; exited: Promise<ChildResult> } {
  const child = spawn(process.execPath, [join(CHILD_DIR, script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const guard = setTimeout(() => child.kill('SIGKILL'), GUARD_MS);
  const exited = once(child, 'close').then(([code]) => {
    clearTimeout(guard);
    return { code: code as number | null, stdout, stderr };
  });
  return { child, exited };
}

/** Runs test/child/<script> to its end; rejects (with its stderr) unless it exits 0. */
export async function runChild(script: string, env: Record<string, string>): Promise<ChildResult> {
  const result = await spawnChild(script, env).exited;
  if (result.code !== 0) throw new Error(`${script} exited ${result.code}:\n${result.stderr}`);
  return result;
}

/** Parses the last stdout line of a finished child as JSON. */
export function lastJson<T>(result: ChildResult): T {
  const lines = result.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? 'null') as T;
}

/** Starts test/child/<script> and resolves with its first stdout line; disposing kills it if still running. */
export async function startChild(script: string, env: Record<string, string>): Promise<RunningChild> {
  const { child, exited } = spawnChild(script, env);
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([once(lines, 'line').then(([line]) => line as string), exited.then(() => undefined)]);
  lines.close();
  if (first === undefined) throw new Error(`${script} ended before it was ready:\n${(await exited).stderr}`);
  return {
    firstLine: first,
    exited,
    [Symbol.asyncDispose]: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The TG_TELEMETRY value for a child: tracing on, exporting to `endpoint`. */
export function tracingOn(endpoint: string, tracing: Record<string, unknown> = {}): string {
  return JSON.stringify({ tracing: { enabled: true, endpoint, ...tracing } });
}

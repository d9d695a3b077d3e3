import { type ChildProcess, spawn } from 'node:child_process';
import { deadline, deadlineDetail, errorDetail } from './deadline.ts';
import { type CommandCheckSpec, invalid } from './spec.ts';
import type { Checker, CheckResult, CheckTarget } from './types.ts';

/** Bytes of stderr kept for the result's detail. */
const STDERR_KEEP = 200;

/**
 * keepalived MISC_CHECK: run `argv` (no shell) with TG_CHECK_HOST / TG_CHECK_PORT in its environment;
 * exit 0 is healthy. With `dynamicWeight` (keepalived `misc_dynamic`) exit 1 fails and 2..255 is healthy
 * with weight = code - 2. At the timeout the command's whole process group gets SIGKILL.
 *
 * spawn rather than execFile: execFile kills only the direct child and waits for its stdio to close, so a
 * script whose own children hang (`sh -c 'curl …'`) would outlive the timeout. Here the child leads its
 * own process group (`detached`) and the group is killed, as keepalived does.
 */
export class CommandChecker implements Checker {
  readonly kind = 'command' as const;
  readonly #spec: CommandCheckSpec;

  constructor(spec: CommandCheckSpec) {
    if (!Array.isArray(spec.argv) || spec.argv.length === 0 || spec.argv.some((a) => typeof a !== 'string') || !spec.argv[0])
      invalid('command health check: argv must be a non-empty array of strings');
    this.#spec = spec;
  }

  check(target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const d = deadline(timeoutMs, signal);
    const done = (ok: boolean, detail: string, weight?: number): CheckResult => {
      d[Symbol.dispose]();
      return weight === undefined ? { ok, detail, durationMs: d.elapsedMs() } : { ok, detail, durationMs: d.elapsedMs(), weight };
    };
    if (d.signal.aborted) return Promise.resolve(done(false, deadlineDetail(d, timeoutMs)));
    const [file, ...args] = this.#spec.argv as [string, ...string[]];
    const env = { ...process.env, TG_CHECK_HOST: target.host, TG_CHECK_PORT: String(target.port) };
    return new Promise<CheckResult>((resolve) => {
      const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (s: string) => {
        if (stderr.length < STDERR_KEEP) stderr += s.slice(0, STDERR_KEEP - stderr.length);
      });
      let settled = false;
      const settle = (r: () => CheckResult) => {
        if (settled) return;
        settled = true;
        d.signal.removeEventListener('abort', onAbort);
        resolve(r());
      };
      const onAbort = () => {
        killGroup(child);
        // 'exit', not 'close': a grandchild that left the group could hold stderr open past the kill.
        const timedOut = () => settle(() => done(false, deadlineDetail(d, timeoutMs)));
        if (child.exitCode !== null || child.signalCode !== null) timedOut();
        else child.once('exit', timedOut);
      };
      d.signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (err) => settle(() => done(false, errorDetail(err))));
      // 'close' waits for stderr to drain, so the detail is complete.
      child.once('close', (code, sig) =>
        settle(() => (d.reason ? done(false, deadlineDetail(d, timeoutMs)) : this.#judge(code, sig, stderr.trim(), done))),
      );
    });
  }

  #judge(code: number | null, sig: NodeJS.Signals | null, stderr: string, done: (ok: boolean, detail: string, w?: number) => CheckResult) {
    const said = stderr ? `: ${stderr.split('\n', 1)[0]}` : '';
    if (code === null) return done(false, `killed by ${sig}${said}`);
    if (code === 0) return done(true, 'exit 0');
    if (this.#spec.dynamicWeight && code >= 2) return done(true, `exit ${code}, weight ${code - 2}`, code - 2);
    return done(false, `exit ${code}${said}`);
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    // Negative pid: the whole group the detached child leads (kill(2)).
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: the group has already exited; the 'close' handler resolves the check.
  }
}

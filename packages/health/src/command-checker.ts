import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import { promisify } from 'node:util';
import { deadline, deadlineDetail, errorDetail } from './deadline.ts';
import { type CommandCheckSpec, invalid } from './spec.ts';
import type { Checker, CheckResult, CheckTarget } from './types.ts';

/** Bytes of stderr kept for the result's detail. */
const STDERR_KEEP = 200;
/** The user a root process runs checks as when the config names none. */
export const DEFAULT_CHECK_USER = 'nobody';
/** PATH of a check's environment (Debian's default for root's login, so sbin tools are found). */
const CHECK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const execFileAsync = promisify(execFile);

/** Who a check runs as: ids for spawn() (absent: this process's own), and the environment naming them. */
interface RunAs {
  readonly uid?: number;
  readonly gid?: number;
  readonly name: string;
  readonly home: string;
}

/** A passwd entry through NSS (`getent passwd`, which sees LDAP/systemd users too; Node has no getpwnam). */
async function lookUpUser(name: string): Promise<RunAs> {
  let line: string;
  try {
    line = (await execFileAsync('getent', ['passwd', name], { timeout: 5_000 })).stdout.split('\n', 1)[0] ?? '';
  } catch (err) {
    // getent exits 2 for an unknown name.
    const code = (err as { code?: unknown }).code;
    throw new Error(code === 2 ? `no user '${name}' (getent passwd)` : `cannot look up user '${name}': ${errorDetail(err)}`);
  }
  const [, , uid, gid, , home] = line.split(':');
  if (uid === undefined || gid === undefined || !/^\d+$/.test(uid) || !/^\d+$/.test(gid))
    throw new Error(`cannot look up user '${name}': getent printed '${line}'`);
  return { uid: Number(uid), gid: Number(gid), name, home: home || '/' };
}

/** The configured user, `nobody` for root without one, or this process's own user (no switch). */
function runAs(user: string | undefined): Promise<RunAs> {
  if (user !== undefined) return lookUpUser(user);
  if (process.getuid?.() === 0) return lookUpUser(DEFAULT_CHECK_USER);
  const me = userInfo();
  return Promise.resolve({ name: me.username, home: me.homedir });
}

/**
 * keepalived MISC_CHECK: run `argv` (no shell) as `spec.user` (default `nobody` when root) with a minimal
 * environment: PATH, HOME, USER, LOGNAME and TG_CHECK_HOST / TG_CHECK_PORT, never this process's own (which may
 * hold tokens and passwords), in `/`; exit 0 is healthy. With `dynamicWeight` (keepalived `misc_dynamic`) exit 1 fails and 2..255 is healthy
 * with weight = code - 2. At the timeout the command's whole process group gets SIGKILL.
 *
 * spawn rather than execFile: execFile kills only the direct child and waits for its stdio to close, so a
 * script whose own children hang (`sh -c 'curl …'`) would outlive the timeout. Here the child leads its
 * own process group (`detached`) and the group is killed, as keepalived does.
 */
export class CommandChecker implements Checker {
  readonly kind = 'command' as const;
  readonly #spec: CommandCheckSpec;
  /** Looked up once, at the first check; a failed lookup is tried again at the next. */
  #runAs: Promise<RunAs> | undefined;

  constructor(spec: CommandCheckSpec) {
    if (!Array.isArray(spec.argv) || spec.argv.length === 0 || spec.argv.some((a) => typeof a !== 'string') || !spec.argv[0])
      invalid('command health check: argv must be a non-empty array of strings');
    if (spec.user !== undefined && (typeof spec.user !== 'string' || spec.user === ''))
      invalid('command health check: user must be a user name');
    this.#spec = spec;
  }

  async check(target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const started = performance.now();
    let who: RunAs;
    try {
      this.#runAs ??= runAs(this.#spec.user);
      who = await this.#runAs;
    } catch (err) {
      this.#runAs = undefined;
      return { ok: false, detail: errorDetail(err), durationMs: performance.now() - started };
    }
    return this.#run(who, target, timeoutMs, signal);
  }

  #run(who: RunAs, target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    const d = deadline(timeoutMs, signal);
    const done = (ok: boolean, detail: string, weight?: number): CheckResult => {
      d[Symbol.dispose]();
      return weight === undefined ? { ok, detail, durationMs: d.elapsedMs() } : { ok, detail, durationMs: d.elapsedMs(), weight };
    };
    if (d.signal.aborted) return Promise.resolve(done(false, deadlineDetail(d, timeoutMs)));
    const [file, ...args] = this.#spec.argv as [string, ...string[]];
    const env = {
      PATH: CHECK_PATH,
      HOME: who.home,
      USER: who.name,
      LOGNAME: who.name,
      TG_CHECK_HOST: target.host,
      TG_CHECK_PORT: String(target.port),
    };
    // uid/gid make libuv drop the supplementary groups too (setgroups(0)) before setgid/setuid.
    const ids = who.uid === undefined ? {} : { uid: who.uid, gid: who.gid };
    return new Promise<CheckResult>((resolve) => {
      const child = spawn(file, args, { env, cwd: '/', stdio: ['ignore', 'ignore', 'pipe'], detached: true, ...ids });
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

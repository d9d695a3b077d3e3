import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** One process of the local stack. */
export interface StackChild {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  /** The last lines it wrote (stdout and stderr), for "exited early" messages. */
  tail(): string;
  /** Settles when it exited (code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SupervisorOptions {
  /** Where children's output lines go, prefixed with their name (default: this process's stderr). */
  readonly echo?: (name: string, line: string) => void;
  /** Called once when a child exits while the stack is not stopping. */
  readonly onUnexpectedExit: (child: StackChild, code: number | null, signal: NodeJS.Signals | null) => void;
}

const TAIL_LINES = 15;
/**
 * A child that dies from the same Ctrl-C as `up` (the terminal signals the whole process group)
 * can be reaped before `up`'s own SIGINT handler runs; waiting this long before calling the exit
 * "unexpected" lets the signal handler mark the stack as stopping first.
 */
const EXIT_VERDICT_DELAY_MS = 150;

/**
 * Starts and stops the stack's child processes by PID. Children stay in `up`'s process group so a
 * Ctrl-C in the terminal reaches them even if `up` itself is killed; a `process.on('exit')` hook
 * SIGKILLs any still running when `up` exits for any other reason.
 */
export class StackSupervisor {
  readonly #children: StackChild[] = [];
  readonly #options: SupervisorOptions;
  #stopping = false;
  readonly #killOnExit = () => {
    for (const c of this.#children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
  };

  constructor(options: SupervisorOptions) {
    this.#options = options;
    process.on('exit', this.#killOnExit);
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  children(): readonly StackChild[] {
    return this.#children;
  }

  /** Spawns `command args` with piped output; rejects when the binary cannot be executed. */
  async start(name: string, command: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<StackChild> {
    const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    await new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve);
      proc.once('error', reject);
    });
    const lines: string[] = [];
    const echo = this.#options.echo ?? ((n: string, l: string) => process.stderr.write(`[${n}] ${l}\n`));
    const collect = (stream: NodeJS.ReadableStream) => {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          lines.push(line);
          if (lines.length > TAIL_LINES) lines.shift();
          echo(name, line);
        }
      });
    };
    collect(proc.stdout!);
    collect(proc.stderr!);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const child: StackChild = { name, pid: proc.pid!, process: proc, tail: () => lines.join('\n'), exited };
    this.#children.push(child);
    exited.then(async ({ code, signal }) => {
      await sleep(EXIT_VERDICT_DELAY_MS);
      if (!this.#stopping) this.#options.onUnexpectedExit(child, code, signal);
    });
    return child;
  }

  /**
   * Stops every child, newest first (the proxy before the apps before Redis): SIGTERM, then SIGKILL
   * to whatever still runs after `graceMs`. Idempotent; resolves when all have exited.
   */
  async stopAll(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const c of [...this.#children].reverse()) await stopOne(c, graceMs);
    process.off('exit', this.#killOnExit);
  }
}

async function stopOne(child: StackChild, graceMs: number): Promise<void> {
  const p = child.process;
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

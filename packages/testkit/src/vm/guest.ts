import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { TgError } from '@tiergate/errors';
import { ensureInitramfs } from './initramfs.ts';
import { findProgram } from './kernel.ts';

/** `node_modules/.bin` of this checkout (Node 24 and the tools the scenarios run). */
const REPO_BIN = resolve(import.meta.dirname, '../../../../node_modules/.bin');

/** What to run in a fresh guest. */
export interface GuestRunOptions {
  /** Bash run as root inside the guest, from /tg-scratch (the scratch share, also `$TG_SCRATCH`). */
  readonly script: string;
  /** Wall-clock limit for boot + script + poweroff; QEMU is killed when it passes. */
  readonly timeoutMs: number;
  /** Guest RAM (default 2048). The guest's / is a tmpfs overlay, so files it writes use RAM too. */
  readonly memoryMb?: number;
  /** Virtual CPUs (default 2). */
  readonly cpus?: number;
  /** Extra files for the scratch share, by path relative to it (visible in the guest under /tg-scratch). */
  readonly files?: Readonly<Record<string, string | Uint8Array>>;
  /**
   * A second NIC (virtio-net) on a tap device of the host: `tap` in the host network namespace `netns`, which must
   * exist (QEMU is started inside that namespace and opens the tap there). The guest joins that L2 segment with
   * `tg_uplink_up` (topology.sh): hosts outside the emulator (network namespaces of the host, on a bridge with the
   * tap) then share one segment with the guest's hosts, and nothing else is reachable either way.
   */
  readonly uplink?: { readonly netns: string; readonly tap: string };
  /**
   * Work the host does while the guest runs (e.g. an Ansible controller on the host driving hosts in the guest),
   * started with QEMU. Its end is announced to the guest by the file `alongside.done` in the scratch share
   * (`ok`, or `failed: <message>`), so the guest script can wait for it; a rejection is reported in
   * `GuestRun.alongsideError`, not thrown. It gets an AbortSignal that fires when the guest has ended.
   */
  readonly alongside?: (scratchDir: string, signal: AbortSignal) => Promise<void>;
}

/** The outcome of one guest run. Disposing it removes the scratch dir (unless `TG_VM_KEEP=1`). */
export interface GuestRun extends AsyncDisposable {
  /** The script's exit code (bash's: 128+N when it died of signal N). */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The serial console: kernel messages and the `tg-init:` progress lines of /init. */
  readonly console: string;
  /** The host dir shared read-write as /tg-scratch; files the script writes there can be read here. */
  readonly scratchDir: string;
  /** Milliseconds from starting QEMU until /init started the script (kernel + modules + mounts). */
  readonly bootMs: number;
  /** Milliseconds from starting QEMU until it exited. */
  readonly totalMs: number;
  /** Why `alongside` failed (undefined when it succeeded or there was none). */
  readonly alongsideError?: Error;
}

const GRACE_MS = 3_000;
const RUN_MARKER = 'tg-init: run ';

/**
 * Boots a throwaway QEMU (TCG) guest with Debian's kernel, the host root read-only under a tmpfs
 * overlay, runs `script` as root and powers off. The script's exit code is returned, not thrown:
 * the test asserts on it. Throws TG_VM_PREREQUISITE when qemu or the kernel is missing and
 * TG_VM_FAILED when the guest does not finish (timeout, panic, mount failure) — with the console
 * tail in the message and the whole console in `details`.
 */
export async function runInGuest(options: GuestRunOptions): Promise<GuestRun> {
  const qemu = findProgram('qemu-system-x86_64', 'qemu-system-x86');
  const initrd = await ensureInitramfs();
  const scratchDir = await mkdtemp(join(tmpdir(), 'tg-guest-'));
  const dispose = () => (process.env.TG_VM_KEEP === '1' ? Promise.resolve() : rm(scratchDir, { recursive: true, force: true }));
  try {
    await writeScratch(scratchDir, options);
    const args = qemuArgs(initrd.kernel.vmlinuz, initrd.path, scratchDir, options);
    const ended = new AbortController();
    const command = options.uplink === undefined ? [qemu] : ['ip', 'netns', 'exec', options.uplink.netns, qemu];
    const bootDone = boot(command, args, options.timeoutMs).finally(() => ended.abort());
    const alongsideDone = runAlongside(options.alongside, scratchDir, ended.signal);
    const [booted, alongsideError] = await Promise.all([bootDone, alongsideDone]);
    await writeFile(join(scratchDir, 'console.log'), booted.console);
    const codeFile = join(scratchDir, 'exit-code');
    if (booted.timedOut || !existsSync(codeFile)) throw guestFailed(booted, options.timeoutMs, scratchDir);
    const [code, stdout, stderr] = await Promise.all(['exit-code', 'stdout', 'stderr'].map((f) => readFile(join(scratchDir, f), 'utf8')));
    return {
      exitCode: Number(code?.trim()),
      stdout: stdout ?? '',
      stderr: stderr ?? '',
      console: booted.console,
      scratchDir,
      bootMs: booted.bootMs ?? Number.NaN,
      totalMs: booted.totalMs,
      ...(alongsideError === undefined ? {} : { alongsideError }),
      [Symbol.asyncDispose]: dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** Runs the host-side task, then tells the guest (scratch file `alongside.done`) how it ended. */
async function runAlongside(task: GuestRunOptions['alongside'], scratchDir: string, signal: AbortSignal): Promise<Error | undefined> {
  if (task === undefined) return undefined;
  let error: Error | undefined;
  try {
    await task(scratchDir, signal);
  } catch (err) {
    error = err instanceof Error ? err : new Error(String(err));
  }
  // The guest may be gone already (its script failed first): the note is then for nobody, and that is fine.
  await writeFile(join(scratchDir, 'alongside.done'), error === undefined ? 'ok\n' : `failed: ${error.message}\n`).catch(() => {});
  return error;
}

async function writeScratch(scratchDir: string, options: GuestRunOptions): Promise<void> {
  // The checkout's Node 24 first on PATH, wherever the checkout is (the host root is the guest's lower layer).
  const path = `export PATH=${REPO_BIN}:$PATH`;
  await writeFile(join(scratchDir, 'run.sh'), `#!/bin/bash\n${path}\n${options.script}\n`, { mode: 0o755 });
  for (const [name, content] of Object.entries(options.files ?? {})) {
    const dest = resolve(scratchDir, name);
    if (!dest.startsWith(`${scratchDir}/`)) throw new TgError('TG_VM_FAILED', `guest file ${name} would land outside the scratch dir`);
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, content);
  }
}

/** The QEMU command line. `-accel kvm` hangs at "Booting from ROM" on these hosts, so TCG it is. */
export function qemuArgs(
  vmlinuz: string,
  initrd: string,
  scratchDir: string,
  options: Pick<GuestRunOptions, 'memoryMb' | 'cpus' | 'uplink'>,
): string[] {
  const share = 'security_model=none,multidevs=remap';
  return [
    // pku=off: `-cpu max` offers memory protection keys, which these hosts' CPUs lack; V8 then takes its
    // PKU-guarded JIT path only in the guest, where it once aborted ("Check failed: it->second.Size() > offset").
    // thread=single: with multi-threaded TCG (the default for -smp 2) Node segfaulted or hit that V8 check in
    // 4 of 28 guest starts (loading the packages' TypeScript, whose stripping runs as WebAssembly); one TCG
    // thread for both vCPUs: 0 of 28, for ~30 % more guest time. Checked with Westmere (no AVX) too: the CPU
    // model was not it (2 of 14).
    ...['-accel', 'tcg,thread=single', '-cpu', 'max,pku=off', '-m', String(options.memoryMb ?? 2048), '-smp', String(options.cpus ?? 2)],
    ...['-nographic', '-no-reboot', '-kernel', vmlinuz, '-initrd', initrd],
    ...['-append', 'console=ttyS0 quiet panic=-1'],
    ...['-virtfs', `local,path=/,mount_tag=hostroot,${share},readonly=on`],
    ...['-virtfs', `local,path=${scratchDir},mount_tag=work,${share}`],
    ...(options.uplink === undefined
      ? ['-net', 'none']
      : ['-netdev', `tap,id=uplink,ifname=${options.uplink.tap},script=no,downscript=no`, '-device', 'virtio-net-pci,netdev=uplink']),
  ];
}

interface Booted {
  readonly console: string;
  readonly timedOut: boolean;
  readonly bootMs: number | undefined;
  readonly totalMs: number;
  readonly exit: string;
}

/** Runs QEMU to completion or until `timeoutMs`, then SIGTERM and, after a grace period, SIGKILL (by PID). */
function boot(command: readonly string[], args: string[], timeoutMs: number): Promise<Booted> {
  const started = performance.now();
  // `ip netns exec` execs QEMU in place: the PID killed on timeout is QEMU's.
  const child: ChildProcess = spawn(command[0] as string, [...command.slice(1), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let bootMs: number | undefined;
  const collect = (b: Buffer) => {
    chunks.push(b);
    // The marker may straddle two chunks, so look in everything collected so far (a few KB).
    if (bootMs === undefined && Buffer.concat(chunks).includes(RUN_MARKER)) bootMs = Math.round(performance.now() - started);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return new Promise((resolvePromise) => {
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), GRACE_MS);
    }, timeoutMs);
    const finish = (exit: string) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      const totalMs = Math.round(performance.now() - started);
      resolvePromise({ console: Buffer.concat(chunks).toString('utf8'), timedOut, bootMs, totalMs, exit });
    };
    child.on('error', (err) => finish(`spawn error: ${err.message}`));
    child.on('close', (code, signal) => finish(signal === null ? `exit code ${code}` : `signal ${signal}`));
  });
}

function guestFailed(booted: Booted, timeoutMs: number, scratchDir: string): TgError {
  const why = booted.timedOut ? `timed out after ${timeoutMs} ms` : `qemu ended (${booted.exit}) before the script finished`;
  const tail = booted.console.split('\n').slice(-40).join('\n');
  return new TgError('TG_VM_FAILED', `guest ${why}; console tail:\n${tail}`, {
    details: { console: booted.console, scratchDir, totalMs: booted.totalMs },
  });
}

// How a `workers: 1` proxy gets a serving process that loads only what serving needs. The process `tiergate proxy`
// started reads and checks the file (zod, yaml, commander: about 4 MB of heap, 8 MiB of peak RSS under load that the
// serving process would keep for its life), then re-executes itself in place (process.execve: same PID, stdio and
// signal targets) with the proxy's V8 flags and malloc settings, and hands the new image what it read (its "plan")
// in a file only it can read. The new image (single-entry.js, runServeImage) serves from the plan; at a reload a
// short-lived child `tiergate proxy reload-read` reads the file, so neither the schema nor the parser ever loads
// where requests are served. (A cluster's workers get the same from their primary, over IPC.)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, TgError } from '@tiergate/errors';
import type { ProxySection } from '@tiergate/proxy';
import type { TelemetrySettings } from '@tiergate/telemetry';
import type { Logger } from 'pino';
import { reportCommandError } from '../command-error.ts';
import { hupReloads } from './hup.ts';
import type { WireError } from './ipc.ts';
import { checkRestartOnly, type ReloadConfig } from './reload-config.ts';
import { proxyExecArgv, proxyMallocEnv } from './v8-flags.ts';

/** Set in the serving image's environment (and removed from it as it starts): the path of its plan. */
export const SERVE_ENV = 'TIERGATE_PROXY_SERVE';

const LAUNCHER = fileURLToPath(new URL('../../bin/tiergate.js', import.meta.url));
const PLAN_DIR_PREFIX = 'tiergate-proxy-';
const PLAN_FILE = 'plan.json';

/** What a `workers: 1` serving process runs with: the checked file, as the process that read it saw it. */
export interface SinglePlan {
  readonly file: string;
  readonly section: ProxySection;
  readonly telemetry: TelemetrySettings;
  /** proxy.drain_delay, resolved against the whole file (drainDelayMs). */
  readonly drainDelayMs: number;
  readonly logLevel: string;
}

/**
 * Replaces this process's image with the serving one: the same launcher and arguments, the proxy's V8 flags and
 * malloc settings added (those the operator did not set: v8-flags.ts), and the plan. Returns only where it could
 * not (no process.execve, no writable TMPDIR, or the execve failed: `warn` says why), and the caller serves in this
 * process.
 */
export function execServeImage(plan: SinglePlan, warn: (msg: string, err?: unknown) => void): void {
  if (typeof process.execve !== 'function') return;
  let dir: string | undefined;
  let path: string;
  try {
    dir = mkdtempSync(join(tmpdir(), PLAN_DIR_PREFIX));
    path = join(dir, PLAN_FILE);
    writeFileSync(path, JSON.stringify(plan), { mode: 0o600 });
  } catch (err) {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    warn(`writing the serving image's plan under ${tmpdir()} failed: serving from this process`, err);
    return;
  }
  const env = { ...process.env, ...proxyMallocEnv(process.env), [SERVE_ENV]: path };
  const execArgv = proxyExecArgv(process.execArgv, process.env.NODE_OPTIONS);
  try {
    process.execve(process.execPath, [process.execPath, ...execArgv, LAUNCHER, ...process.argv.slice(2)], env);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    warn('re-executing with the proxy settings failed: serving from this process', err);
  }
}

/** In the serving image: reads its plan, then deletes it and takes SERVE_ENV out of the environment (of children too). */
export function takePlan(): SinglePlan {
  const path = process.env[SERVE_ENV] ?? '';
  delete process.env[SERVE_ENV];
  // Only a file execServeImage wrote is read and removed.
  if (basename(path) !== PLAN_FILE || !basename(dirname(path)).startsWith(PLAN_DIR_PREFIX))
    throw new TgError('TG_CLI_USAGE', `${SERVE_ENV} is set by tiergate itself, to a ${PLAN_DIR_PREFIX}*/${PLAN_FILE} file (got "${path}")`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as SinglePlan;
  } finally {
    rmSync(path, { force: true });
    try {
      rmdirSync(dirname(path));
    } catch {
      // Not empty, or gone: not ours to remove.
    }
  }
}

/** What `tiergate proxy reload-read` prints: the reload's config, or why the file cannot be one. */
export type ReloadReadOutput = ReloadConfig | { readonly error: WireError };

/**
 * Reads and checks `file` for a reload of a serving process running `running`, in a child process
 * (`tiergate proxy reload-read`): rejects with the child's config error (TG_CONFIG_*) or TG_PROXY_RELOAD_REJECTED,
 * as loadReload does in a process that reads its own file (proxy-file.ts).
 */
export function readReloadInChild(file: string, running: ProxySection, timeoutMs = 60_000): Promise<ReloadConfig> {
  return new Promise((resolve, reject) => {
    // No proxy V8 flags: the launcher's own, and its compile cache.
    const child = spawn(process.execPath, [LAUNCHER, 'proxy', 'reload-read', '-c', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', (e) => reject(new TgError('TG_CONFIG_UNREADABLE', `${file}: reading it for the reload failed: ${e.message}`)));
    child.on('close', (code, signal) => {
      let read: ReloadReadOutput;
      try {
        read = JSON.parse(out) as ReloadReadOutput;
      } catch {
        const how = signal ?? `exit ${code}`;
        reject(new TgError('TG_CONFIG_UNREADABLE', `${file}: reading it for the reload failed (${how}): ${err.trim().slice(-500)}`));
        return;
      }
      if ('error' in read) {
        const code = read.error.code in ERROR_CODES ? read.error.code : 'TG_CONFIG_INVALID';
        reject(new TgError(code, read.error.message));
        return;
      }
      try {
        checkRestartOnly(file, read.section, running);
        resolve(read);
      } catch (e) {
        reject(e);
      }
    });
  });
}

/**
 * The serving image (single-entry.js): takes its plan and serves it until SIGTERM/SIGINT (serveSingle), reloads
 * reading the file in a child. Ends as main.ts ends a command (reportCommandError).
 */
export async function runServeImage(): Promise<void> {
  // First: a SIGHUP before the proxy is ready must not kill the process (the execve reset the handler).
  let log: Logger | undefined;
  const hup = hupReloads(() => log?.warn('SIGHUP before the proxy was ready: ignored'));
  try {
    // Imported after the SIGHUP handler is in place: the proxy and its dependencies take a while to load.
    const [{ createLogger }, { serveSingle }] = await Promise.all([import('../logger.ts'), import('./single.ts')]);
    const plan = takePlan();
    log = createLogger(plan.logLevel, 'tiergate-proxy');
    await serveSingle(plan, log, hup.onReload, readReloadInChild);
    log.flush();
  } catch (err) {
    await reportCommandError(err);
  } finally {
    hup.dispose();
  }
}

import { isDeepStrictEqual } from 'node:util';
import { TgError } from '@tiergate/errors';
import type { ProxySection } from '@tiergate/proxy';
import type { WireError } from './ipc.ts';

// No @tiergate/config (zod, yaml) here: a `workers: 1` proxy's serving process imports this module and reads its
// file in a child (single-image.ts); proxy-file.ts reads it in the process.

/** Keys a reload cannot change: the sockets and processes exist already. */
const RESTART_ONLY = ['listeners', 'workers', 'admin'] as const;

/** A config file read for a reload: its proxy section and the drain delay it gives (drainDelayMs). */
export interface ReloadConfig {
  readonly section: ProxySection;
  readonly drainDelayMs: number;
}

/** Reads and checks `file` for a reload of a proxy running `running` (proxy-file.ts, or in a child: single-image.ts). */
export type ReadReload = (file: string, running: ProxySection) => Promise<ReloadConfig>;

/** Rejects with TG_PROXY_RELOAD_REJECTED when `next` changes a restart-only key of `running`; nothing is applied then. */
export function checkRestartOnly(file: string, next: ProxySection, running: ProxySection): void {
  for (const key of RESTART_ONLY)
    if (!isDeepStrictEqual(next[key], running[key]))
      throw new TgError('TG_PROXY_RELOAD_REJECTED', `${file}: proxy.${key} changed; restart the proxy to apply it`);
}

/** Runs `fn` calls one at a time (a second SIGHUP during a reload waits for the first). */
export function serialized<T>(fn: () => Promise<T>): () => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return () => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

/** How one worker took a reload: applied it, refused it (its reload is atomic: it runs the old config), or did not answer. */
export type WorkerReloadResult = { readonly applied: true } | { readonly applied: false; readonly error: WireError } | 'no answer';

/** What the primary does after every worker answered a reload (or did not). */
export interface ReloadOutcome {
  /** The new config becomes the one every worker runs (and new workers get). */
  readonly commit: boolean;
  /** Workers (indices) that applied the new config and must go back to the old one. */
  readonly rollBack: number[];
  /** Workers that did not answer: wedged, or in an unknown state; killed and replaced. */
  readonly replace: number[];
  /** The error the reload answers with, if it is not committed. */
  readonly error: WireError | undefined;
}

/**
 * All or nothing, so workers never run different configs: one worker refusing the file means every
 * worker that applied it rolls back and the reload fails with that worker's error. A worker that did not
 * answer does not block the reload: it is replaced (by a fresh process, which starts on whatever config
 * is committed). With no worker answering at all nothing is known to work, so nothing is committed.
 */
export function reloadOutcome(results: readonly WorkerReloadResult[]): ReloadOutcome {
  const replace = results.flatMap((r, i) => (r === 'no answer' ? [i] : []));
  const refused = results.findIndex((r) => r !== 'no answer' && !r.applied);
  const answered = results.length - replace.length;
  if (refused >= 0) {
    const rollBack = results.flatMap((r, i) => (r !== 'no answer' && r.applied ? [i] : []));
    return { commit: false, rollBack, replace, error: (results[refused] as { error: WireError }).error };
  }
  if (results.length > 0 && answered === 0)
    return { commit: false, rollBack: [], replace, error: { code: 'TG_ADMIN_FAILED', message: 'no worker answered the reload' } };
  return { commit: true, rollBack: [], replace, error: undefined };
}

/**
 * How long a worker may take to answer a reload of `section`: it waits for servers added to a pool with a
 * health check to pass one (up to the check's timeout + 1 s, proxy-server.ts reload()).
 */
export function reloadAnswerTimeoutMs(section: ProxySection, ipcTimeoutMs: number): number {
  const checks = Object.values(section.pools).map((p) => (p.health_check ? p.health_check.timeout + 1_000 : 0));
  return ipcTimeoutMs + Math.max(0, ...checks);
}

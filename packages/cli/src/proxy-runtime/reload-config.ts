import { isDeepStrictEqual } from 'node:util';
import { loadConfigFile } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import type { ProxySection } from '@tiergate/proxy';

/** Keys a reload cannot change: the sockets and processes exist already. */
const RESTART_ONLY = ['listeners', 'workers', 'admin'] as const;

/**
 * Reads and validates `file` for a reload of a proxy running `running`. Rejects with the config error
 * (TG_CONFIG_*), or TG_PROXY_RELOAD_REJECTED when a restart-only key changed; nothing is applied then.
 */
export async function loadReload(file: string, running: ProxySection): Promise<ProxySection> {
  const config = await loadConfigFile(file);
  if (!config.proxy) throw new TgError('TG_CONFIG_INVALID', `${file}: has no proxy section`);
  for (const key of RESTART_ONLY)
    if (!isDeepStrictEqual(config.proxy[key], running[key]))
      throw new TgError('TG_PROXY_RELOAD_REJECTED', `${file}: proxy.${key} changed; restart the proxy to apply it`);
  return config.proxy;
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

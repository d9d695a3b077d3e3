import { drainDelayMs, loadConfigFile } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import type { ProxySection } from '@tiergate/proxy';
import { checkRestartOnly, type ReloadConfig } from './reload-config.ts';

/**
 * Reads and validates `file` for a reload of a proxy running `running`. Rejects with the config error
 * (TG_CONFIG_*), or TG_PROXY_RELOAD_REJECTED when a restart-only key changed; nothing is applied then.
 * The drain delay comes from the whole file: `auto` reads its virtual services' health checks.
 */
export async function loadReload(file: string, running: ProxySection): Promise<ReloadConfig> {
  const config = await loadConfigFile(file);
  if (!config.proxy) throw new TgError('TG_CONFIG_INVALID', `${file}: has no proxy section`);
  checkRestartOnly(file, config.proxy, running);
  return { section: config.proxy, drainDelayMs: drainDelayMs(config) };
}

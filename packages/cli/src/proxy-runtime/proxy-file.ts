import { type Config, drainDelayMs, loadConfigFile } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import type { ProxySection } from '@tiergate/proxy';
import { checkRestartOnly, type ReloadConfig } from './reload-config.ts';

/** A config file read for the proxy: the whole file (telemetry, drain delay) and its proxy section. */
export interface ProxyFile {
  readonly config: Config;
  readonly section: ProxySection;
}

/** Reads and validates `file`; rejects with the config error (TG_CONFIG_*), TG_CONFIG_INVALID when it has no proxy section. */
export async function loadProxyFile(file: string): Promise<ProxyFile> {
  const config = await loadConfigFile(file);
  if (!config.proxy) throw new TgError('TG_CONFIG_INVALID', `${file}: has no proxy section`);
  return { config, section: config.proxy };
}

/**
 * What a reload of `file` would apply: its proxy section and drain delay. The drain delay comes from the whole file:
 * `auto` reads its virtual services' health checks. Rejects as loadProxyFile.
 */
export async function readReloadConfig(file: string): Promise<ReloadConfig> {
  const { config, section } = await loadProxyFile(file);
  return { section, drainDelayMs: drainDelayMs(config) };
}

/**
 * Reads and validates `file` for a reload of a proxy running `running`. Rejects with the config error
 * (TG_CONFIG_*), or TG_PROXY_RELOAD_REJECTED when a restart-only key changed; nothing is applied then.
 */
export async function loadReload(file: string, running: ProxySection): Promise<ReloadConfig> {
  const next = await readReloadConfig(file);
  checkRestartOnly(file, next.section, running);
  return next;
}

// What `tiergate proxy` does; its options and help are in commands/proxy.ts, which imports this module when it runs.
import { TgError } from '@tiergate/errors';
import type { AdminStatus } from '@tiergate/proxy';
import { createLogger } from '../logger.ts';
import { adminUrl, callAdmin } from '../proxy-runtime/admin-client.ts';
import { loadProxyFile, type ProxyFile } from '../proxy-runtime/proxy-file.ts';
import { runProxy } from '../proxy-runtime/run-proxy.ts';
import { renderStatus } from '../proxy-runtime/status-table.ts';

async function proxyFile(file: string | undefined): Promise<ProxyFile> {
  if (!file) throw new TgError('TG_CLI_USAGE', 'missing -c, --config <file>');
  return loadProxyFile(file);
}

/** `tiergate proxy -c FILE` (commands/proxy.ts): runs the proxy until SIGTERM/SIGINT. */
export async function proxyCommand(opts: { config?: string }): Promise<void> {
  const read = await proxyFile(opts.config);
  const log = createLogger(read.config.telemetry.logs.level, 'tiergate-proxy');
  await runProxy(opts.config!, read, log);
  log.flush();
}

/** `tiergate proxy reload`: POST /reload on the running proxy's admin endpoint. */
export async function reloadCommand(opts: { config?: string; admin?: string }): Promise<void> {
  const { section } = await proxyFile(opts.config);
  await callAdmin(adminUrl(section.admin, opts.admin), '/reload', { token: section.admin.token, method: 'POST' });
  process.stdout.write('reloaded\n');
}

/** `tiergate proxy status`: the running proxy's /status (and /readyz) as a table or JSON. */
export async function statusCommand(opts: { config?: string; admin?: string; json?: boolean }): Promise<void> {
  const { section } = await proxyFile(opts.config);
  const base = adminUrl(section.admin, opts.admin);
  const token = section.admin.token;
  const status = (await callAdmin(base, '/status', { token })).body as AdminStatus;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return;
  }
  const ready = (await callAdmin(base, '/readyz', { token, acceptStatus: [503] })).body as { ready: boolean; reasons: string[] };
  process.stdout.write(renderStatus(status, ready));
}

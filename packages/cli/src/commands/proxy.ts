import { loadConfigFile } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import type { AdminStatus, ProxySection } from '@tiergate/proxy';
import type { Command } from 'commander';
import { createLogger } from '../logger.ts';
import { adminUrl, callAdmin } from '../proxy-runtime/admin-client.ts';
import { runProxy } from '../proxy-runtime/run-proxy.ts';
import { renderStatus } from '../proxy-runtime/status-table.ts';

async function loadProxyFile(file: string | undefined): Promise<{ section: ProxySection; logLevel: string }> {
  if (!file) throw new TgError('TG_CLI_USAGE', 'missing -c, --config <file>');
  const config = await loadConfigFile(file);
  if (!config.proxy) throw new TgError('TG_CONFIG_INVALID', `${file}: has no proxy section`);
  return { section: config.proxy, logLevel: config.telemetry.logs.level };
}

/**
 * `tiergate proxy -c FILE` runs the L7 proxy of the file's `proxy` section until SIGTERM/SIGINT
 * (`workers` processes; SIGHUP reloads). `proxy reload` and `proxy status` talk to a running proxy
 * through its admin endpoint, found from the same file's `proxy.admin` (or --admin).
 */
export function registerProxy(program: Command): void {
  const proxy = program
    .command('proxy')
    .description('run the L7 proxy described by the proxy section of the file')
    .option('-c, --config <file>', 'tiergate.yaml')
    .action(async (opts: { config?: string }) => {
      const { section, logLevel } = await loadProxyFile(opts.config);
      const log = createLogger(logLevel, 'tiergate-proxy');
      await runProxy(opts.config!, section, log);
      log.flush();
    });

  proxy
    .command('reload')
    .description('make the running proxy re-read its config file (validated first; on error the running config stays)')
    .option('-c, --config <file>', 'tiergate.yaml (its proxy.admin locates the running proxy)')
    .option('--admin <url>', 'admin endpoint URL, instead of the one in the file')
    .action(async (_: unknown, cmd: Command) => {
      // -c may also be parsed as the parent command's option: read both.
      const opts = cmd.optsWithGlobals<{ config?: string; admin?: string }>();
      const { section } = await loadProxyFile(opts.config);
      await callAdmin(adminUrl(section.admin, opts.admin), '/reload', { token: section.admin.token, method: 'POST' });
      process.stdout.write('reloaded\n');
    });

  proxy
    .command('status')
    .description('show the running proxy: readiness, workers, and per server state, health, requests and latency')
    .option('-c, --config <file>', 'tiergate.yaml (its proxy.admin locates the running proxy)')
    .option('--admin <url>', 'admin endpoint URL, instead of the one in the file')
    .option('--json', 'print the /status JSON as it is')
    .action(async (_: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<{ config?: string; admin?: string; json?: boolean }>();
      const { section } = await loadProxyFile(opts.config);
      const base = adminUrl(section.admin, opts.admin);
      const token = section.admin.token;
      const status = (await callAdmin(base, '/status', { token })).body as AdminStatus;
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        return;
      }
      const ready = (await callAdmin(base, '/readyz', { token, acceptStatus: [503] })).body as { ready: boolean; reasons: string[] };
      process.stdout.write(renderStatus(status, ready));
    });
}

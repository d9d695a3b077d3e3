import { loadConfigFile } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import { startProxy } from '@tiergate/proxy';
import type { Command } from 'commander';
import { createLogger } from '../logger.ts';

/** `tiergate proxy -c FILE`: runs the L7 proxy of the file's `proxy` section until SIGTERM/SIGINT. */
export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('run the L7 proxy described by the proxy section of the file')
    .requiredOption('-c, --config <file>', 'tiergate.yaml')
    .action(async (opts: { config: string }) => {
      const config = await loadConfigFile(opts.config);
      if (!config.proxy) throw new TgError('TG_CONFIG_INVALID', `${opts.config}: has no proxy section`);
      const log = createLogger(config.telemetry.logs.level, 'tiergate-proxy');
      const proxy = await startProxy(config.proxy, { logger: log });
      for (const a of proxy.addresses()) log.info({ address: a.address, port: a.port, tls: a.tls }, 'listening');
      process.stdout.write(
        `${proxy
          .addresses()
          .map((a) => `listening on ${a.tls ? 'https' : 'http'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`)
          .join('\n')}\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log.info({ signal }, 'draining');
          proxy.close().then(resolve, resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      log.info('stopped');
      log.flush();
    });
}

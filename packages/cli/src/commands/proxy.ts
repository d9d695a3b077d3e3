import type { Command } from 'commander';

/** What the commands do (and with it @tiergate/proxy, undici, pino) is loaded when one of them runs, not to print help. */
const actions = () => import('../actions/proxy.ts');

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
    .action(async (opts: { config?: string }) => (await actions()).proxyCommand(opts));

  proxy
    .command('reload')
    .description('make the running proxy re-read its config file (validated first; on error the running config stays)')
    .option('-c, --config <file>', 'tiergate.yaml (its proxy.admin locates the running proxy)')
    .option('--admin <url>', 'admin endpoint URL, instead of the one in the file')
    // -c may also be parsed as the parent command's option: read both.
    .action(async (_: unknown, cmd: Command) =>
      (await actions()).reloadCommand(cmd.optsWithGlobals<{ config?: string; admin?: string }>()),
    );

  // What a `workers: 1` proxy's serving process runs to read its file at a reload (proxy-runtime/single-image.ts).
  proxy
    .command('reload-read', { hidden: true })
    .description('print what a reload of the file would apply, as JSON (internal)')
    .option('-c, --config <file>', 'tiergate.yaml')
    .action(async (_: unknown, cmd: Command) =>
      (await import('../actions/proxy-reload-read.ts')).reloadReadCommand(cmd.optsWithGlobals<{ config?: string }>()),
    );

  proxy
    .command('status')
    .description('show the running proxy: readiness, workers, and per server state, health, requests and latency')
    .option('-c, --config <file>', 'tiergate.yaml (its proxy.admin locates the running proxy)')
    .option('--admin <url>', 'admin endpoint URL, instead of the one in the file')
    .option('--json', 'print the /status JSON as it is')
    .action(async (_: unknown, cmd: Command) =>
      (await actions()).statusCommand(cmd.optsWithGlobals<{ config?: string; admin?: string; json?: boolean }>()),
    );
}

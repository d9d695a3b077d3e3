import type { Command } from 'commander';
import type { ApplyOpts, CommonOpts, DrainOpts, StatusOpts } from '../actions/director.ts';
import type { WaitOpts } from '../actions/director-wait.ts';

/**
 * What the subcommands do (and with it @tiergate/director, IPVS over koffi, prom-client, OpenTelemetry) is loaded when
 * one of them runs, not to print help: see program.ts.
 */
const actions = () => import('../actions/director.ts');

function common(cmd: Command): Command {
  return cmd
    .requiredOption('-c, --config <file>', 'tiergate.yaml')
    .option('--name <director>', 'which director of the file this host is (default: the only one)')
    .option('--state-file <path>', 'where ownership and drain state are kept (default /run/tiergate/director-<name>-net<ns>.json)');
}

/** `tiergate director run|apply|status|drain|undrain|wait`. */
export function registerDirector(program: Command): void {
  const director = program.command('director').description('the L4 director: reconcile kernel IPVS with tiergate.yaml');
  common(director.command('apply'))
    .description('apply the virtual services once (VIPs, sysctls, IPVS); --dry-run prints the ipvsadm commands instead')
    .option('--dry-run', 'print the plan as ipvsadm commands; change nothing')
    .option(
      '--against-empty',
      'with --dry-run: plan against an empty IPVS table instead of reading the kernel (no root, no ip_vs: review a file anywhere)',
    )
    .action(async (opts: ApplyOpts) => (await actions()).applyCommand(opts));
  common(director.command('run'))
    .description('run the director daemon: health checks, reconcile loop, admin /status and /metrics')
    .action(async (opts: CommonOpts) => (await actions()).runCommand(opts));
  common(director.command('status'))
    .description(
      'show the IPVS table with health, from the running daemon (admin /status) or else from the kernel, and the VRRP role and sync daemon',
    )
    .option('--json', 'print the status as JSON')
    .option('--vrrp-state-file <path>', "keepalived's state as its notify script records it (default /run/tiergate/vrrp-<name>.state)")
    .action(async (opts: StatusOpts) => (await actions()).statusCommand(opts));
  common(director.command('drain'))
    .description('drain one real server by hand through the running daemon: weight 0, wait for its connections, then keep or remove it')
    .requiredOption('--service <service>', 'the virtual service: its name, VIP:PORT, or a key like udp/VIP:PORT')
    .requiredOption('--server <address>', 'the real server: ADDR or ADDR:PORT')
    .option('--timeout <duration>', "how long to wait for its active connections (default: the service's drain_timeout)")
    .option('--then <what>', 'once drained: keep it at weight 0, or remove it from the service (keep|remove)', 'keep')
    .option('--no-wait', 'return once it is at weight 0; the daemon finishes the drain')
    .option('--json', 'print the result as JSON')
    .action(async (opts: DrainOpts) => (await actions()).drainCommand(opts));
  common(director.command('undrain'))
    .description('give a real server drained by hand back to the config and its health check')
    .requiredOption('--service <service>', 'the virtual service: its name, VIP:PORT, or a key like udp/VIP:PORT')
    .requiredOption('--server <address>', 'the real server: ADDR or ADDR:PORT')
    .option('--json', 'print the result as JSON')
    .action(async (opts: DrainOpts) => (await actions()).drainCommand(opts, 'undrain'));
  common(director.command('wait'))
    .description(
      'wait until the running daemon routes new connections to a real server in every service that lists it (after a restart of that node)',
    )
    .requiredOption('--server <address>', 'the real server: ADDR or ADDR:PORT')
    .option('--timeout <duration>', 'how long to wait before exiting 1 (TG_DIRECTOR_WAIT_TIMEOUT)', '60s')
    .option('--json', 'print where it stands in each service as JSON')
    // Its own module: it loads no more than the file and the status reading (actions/director-file.ts says why).
    .action(async (opts: WaitOpts) => (await import('../actions/director-wait.ts')).waitCommand(opts));
}

import { loadConfigFile } from '@tiergate/config';
import {
  defaultStatePath,
  detectRealServerInterface,
  emptyRealServerState,
  JsonFile,
  type RealServerState,
  realServerDown,
  realServerPlan,
  realServerUp,
} from '@tiergate/director';
import type { Command } from 'commander';

interface Opts {
  config: string;
  vip?: string[];
  interface?: string;
  stateFile?: string;
}

function stateFile(opts: Opts): JsonFile<RealServerState> {
  return new JsonFile(opts.stateFile ?? defaultStatePath('realserver', 'host'), emptyRealServerState());
}

/** `tiergate realserver up|down`: the LVS-DR/TUN real-server recipe, idempotent and reversible. */
export function registerRealserver(program: Command): void {
  const rs = program.command('realserver').description('prepare this host as an IPVS real server (VIP on lo/tunl0, ARP sysctls)');
  rs.command('up')
    .description('add the VIPs (DR: lo, TUN: tunl0) and the ARP / rp_filter sysctls; remembers what it changed')
    .requiredOption('-c, --config <file>', 'tiergate.yaml')
    .option('--vip <address...>', 'only these VIPs (default: every DR/TUN virtual service address)')
    .option('--interface <name>', 'the NIC that receives ARP requests (default: the one holding a configured real-server address)')
    .option('--state-file <path>', 'where the previous host settings are saved (default under /run/tiergate)')
    .action(async (opts: Opts) => {
      const config = await loadConfigFile(opts.config);
      const nic = opts.interface ?? (await detectRealServerInterface(config.virtual_services));
      const plan = realServerPlan(config.virtual_services, nic, opts.vip);
      const file = stateFile(opts);
      const state = await file.load();
      try {
        await realServerUp(plan, state);
      } finally {
        await file.save(state);
      }
      process.stdout.write(
        `real server up on ${nic}: ${plan.vips.map((v) => `${v.address}/${v.prefix} on ${v.dev}`).join(', ') || 'no VIPs'}\n`,
      );
    });
  rs.command('down')
    .description('undo `realserver up`: remove the VIPs it added and restore the sysctls it changed')
    .requiredOption('-c, --config <file>', 'tiergate.yaml')
    .option('--state-file <path>', 'the state file `up` wrote')
    .action(async (opts: Opts) => {
      await loadConfigFile(opts.config);
      const file = stateFile(opts);
      const done = await realServerDown(await file.load());
      await file.remove();
      for (const line of done) process.stdout.write(`${line}\n`);
      process.stdout.write(done.length === 0 ? 'nothing to undo\n' : 'real server down\n');
    });
}

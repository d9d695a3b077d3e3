import type { Command } from 'commander';
import type { RealserverOpts } from '../actions/realserver.ts';

/** What `up` and `down` do (and with it @tiergate/director) is loaded when one of them runs, not to print help. */
const actions = () => import('../actions/realserver.ts');

/** `tiergate realserver up|down`: the LVS-DR/TUN real-server recipe, idempotent and reversible. */
export function registerRealserver(program: Command): void {
  const rs = program.command('realserver').description('prepare this host as an IPVS real server (VIP on lo/tunl0, ARP sysctls)');
  rs.command('up')
    .description('add the VIPs (DR: lo, TUN: tunl0) and the ARP / rp_filter sysctls; remembers what it changed')
    .requiredOption('-c, --config <file>', 'tiergate.yaml')
    .option('--vip <address...>', 'only these VIPs (default: every DR/TUN virtual service address)')
    .option('--interface <name>', 'the NIC that receives ARP requests (default: the one holding a configured real-server address)')
    .option('--state-file <path>', 'where the previous host settings are saved (default under /run/tiergate)')
    .option('--proxy-admin <url>', "the local proxy's admin endpoint, instead of the file's proxy.admin")
    .action(async (opts: RealserverOpts) => (await actions()).realserverUp(opts));
  rs.command('down')
    .description(
      "undo `realserver up`: first fail the local proxy's health check and wait its drain delay (the director quiesces this node), then remove the VIPs and restore the sysctls",
    )
    .requiredOption('-c, --config <file>', 'tiergate.yaml')
    .option('--state-file <path>', 'the state file `up` wrote')
    .option('--proxy-admin <url>', "the local proxy's admin endpoint, instead of the file's proxy.admin")
    .option('--no-drain', 'remove the VIPs at once, without telling the director first')
    .action(async (opts: RealserverOpts) => (await actions()).realserverDown(opts));
}

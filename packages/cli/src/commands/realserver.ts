import { setTimeout as sleep } from 'node:timers/promises';
import { type Config, drainDelayMs, loadConfigFile } from '@tiergate/config';
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
import { isTgError } from '@tiergate/errors';
import type { Command } from 'commander';
import { adminUrl, callAdmin } from '../proxy-runtime/admin-client.ts';

interface Opts {
  config: string;
  vip?: string[];
  interface?: string;
  stateFile?: string;
  proxyAdmin?: string;
  drain?: boolean;
}

/**
 * Flips the health check of the proxy this host runs (the file's `proxy`, found by `proxy.admin` or
 * --proxy-admin): POST /healthcheck/fail before the VIP goes (`realserver down`), /healthcheck/ok when it comes
 * back (`up`). Returns what happened, for the command's output; a proxy that does not answer (stopped, or
 * another server on this host) is a note, not an error: nothing serves there to drain.
 */
async function flipProxyHealth(config: Config, opts: Opts, failing: boolean): Promise<{ flipped: boolean; note: string }> {
  const proxy = config.proxy;
  if (!proxy) return { flipped: false, note: 'no proxy section: no health check to fail' };
  if (proxy.monitor_uri === undefined && failing)
    return { flipped: false, note: 'proxy.monitor_uri is unset: the director cannot see this node leave' };
  let base: string;
  try {
    base = adminUrl(proxy.admin, opts.proxyAdmin);
    await callAdmin(base, failing ? '/healthcheck/fail' : '/healthcheck/ok', { token: proxy.admin.token, method: 'POST' });
  } catch (err) {
    if (isTgError(err, 'TG_ADMIN_UNREACHABLE')) return { flipped: false, note: `no proxy answers (${err.message}): nothing to drain` };
    throw err;
  }
  return {
    flipped: true,
    note: `proxy at ${base}: health check ${failing ? 'failing' : 'passing'} (${proxy.monitor_uri ?? 'no monitor_uri'})`,
  };
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
    .option('--proxy-admin <url>', "the local proxy's admin endpoint, instead of the file's proxy.admin")
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
      // A proxy left failing by an earlier `down` (it kept running) passes its check again: the director adds it back.
      const health = await flipProxyHealth(config, opts, false);
      if (health.flipped) process.stdout.write(`${health.note}\n`);
    });
  rs.command('down')
    .description(
      "undo `realserver up`: first fail the local proxy's health check and wait its drain delay (the director quiesces this node), then remove the VIPs and restore the sysctls",
    )
    .requiredOption('-c, --config <file>', 'tiergate.yaml')
    .option('--state-file <path>', 'the state file `up` wrote')
    .option('--proxy-admin <url>', "the local proxy's admin endpoint, instead of the file's proxy.admin")
    .option('--no-drain', 'remove the VIPs at once, without telling the director first')
    .action(async (opts: Opts) => {
      const config = await loadConfigFile(opts.config);
      // Without the VIP, packets the director still sends here are dropped: clients of new connections would wait
      // for a timeout. So the director is told first (the proxy's monitor_uri answers 503), and given the time its
      // check needs to set weight 0 (proxy.drain_delay), as on the proxy's own SIGTERM.
      if (opts.drain !== false) {
        const health = await flipProxyHealth(config, opts, true);
        process.stdout.write(`${health.note}\n`);
        const delay = health.flipped ? drainDelayMs(config) : 0;
        if (delay > 0) {
          process.stdout.write(`waiting ${(delay / 1000).toFixed(1)} s (proxy.drain_delay) for the director to quiesce this node\n`);
          await sleep(delay);
        }
      }
      const file = stateFile(opts);
      const done = await realServerDown(await file.load());
      await file.remove();
      for (const line of done) process.stdout.write(`${line}\n`);
      process.stdout.write(done.length === 0 ? 'nothing to undo\n' : 'real server down\n');
    });
}

// What `tiergate realserver` does; its options and help are in commands/realserver.ts, which imports this module when it runs.
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
import { adminUrl, callAdmin } from '../proxy-runtime/admin-client.ts';

export interface RealserverOpts {
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
async function flipProxyHealth(config: Config, opts: RealserverOpts, failing: boolean): Promise<{ flipped: boolean; note: string }> {
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

function stateFile(opts: RealserverOpts): JsonFile<RealServerState> {
  return new JsonFile(opts.stateFile ?? defaultStatePath('realserver', 'host'), emptyRealServerState());
}

/** `tiergate realserver up` (commands/realserver.ts). */
export async function realserverUp(opts: RealserverOpts): Promise<void> {
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
}

/** `tiergate realserver down` (commands/realserver.ts). */
export async function realserverDown(opts: RealserverOpts): Promise<void> {
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
}

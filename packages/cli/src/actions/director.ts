// What `tiergate director` does; its options and help are in commands/director.ts, which imports this module when it runs.
import { request } from 'node:http';
import { type Config, duration, loadConfigFile } from '@tiergate/config';
import {
  buildStatus,
  configuredServiceKeys,
  createLogger,
  Director,
  type DirectorStatus,
  defaultStatePath,
  defaultVrrpStatePath,
  describeOp,
  desiredEntries,
  FileStateStore,
  followsVrrp,
  formatHaStatus,
  formatIpvsadmCommand,
  formatStatusTable,
  haStatus,
  type Logger,
  type ManualDrainResult,
  openIpvsDriver,
  plan,
  reconcileCycle,
  SyncRoleFollower,
  serviceIdOfConfig,
  setupDirectorHost,
  startAdminServer,
} from '@tiergate/director';
import { type ErrorCode, TgError } from '@tiergate/errors';
import { logContext } from '@tiergate/telemetry';
import { startCommandTelemetry } from '../process-telemetry.ts';

import { adminOf, type CommonOpts, type DirectorCfg, pickDirector } from './director-file.ts';

export type { CommonOpts } from './director-file.ts';

async function load(opts: CommonOpts): Promise<{ config: Config; director: DirectorCfg; stateFile: string }> {
  const config = await loadConfigFile(opts.config);
  const director = pickDirector(config, opts.name);
  // Fail on a config the kernel would reject before touching anything (identity of every service).
  for (const vs of config.virtual_services) serviceIdOfConfig(vs);
  return { config, director, stateFile: opts.stateFile ?? defaultStatePath('director', director.name) };
}

export type DrainOpts = CommonOpts & { service: string; server: string; timeout?: string; then: string; wait: boolean; json?: boolean };

/**
 * `director drain|undrain`: POST /drain or /undrain on the daemon (the daemon holds the state: it keeps the server
 * drained across cycles, reloads and restarts). Waits with the daemon unless --no-wait.
 */
export async function drainCommand(opts: DrainOpts, what: 'drain' | 'undrain' = 'drain'): Promise<void> {
  const { director } = await load(opts);
  if (what === 'drain' && opts.then !== 'keep' && opts.then !== 'remove')
    throw new TgError('TG_CLI_USAGE', `--then: expected keep or remove, not '${opts.then}'`);
  const timeout = opts.timeout === undefined ? undefined : duration.safeParse(opts.timeout);
  if (timeout && !timeout.success) throw new TgError('TG_CLI_USAGE', `--timeout: ${timeout.error.issues[0]?.message}`);
  const body =
    what === 'drain'
      ? { service: opts.service, server: opts.server, after: opts.then, wait: opts.wait, ...(timeout ? { timeout_ms: timeout.data } : {}) }
      : { service: opts.service, server: opts.server };
  const { url, headers } = adminOf(director);
  const res = await postJson(`${url}/${what}`, headers, body).catch((cause: unknown) => {
    throw new TgError(
      'TG_ADMIN_UNREACHABLE',
      `no director daemon answers at ${url} (is \`tiergate director run\` running?): ${(cause as Error).message}`,
      { cause },
    );
  });
  const answer = res.body;
  if (res.status !== 200)
    throw new TgError((answer.code ?? 'TG_ADMIN_FAILED') as ErrorCode, String(answer.message ?? `/${what}: HTTP ${res.status}`));
  if (opts.json) process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
  else if (what === 'undrain')
    process.stdout.write(`${answer.restored ? 'undrained' : 'was not drained'}: ${answer.service} -> ${answer.server}\n`);
  else process.stdout.write(`${describeDrain(answer as unknown as ManualDrainResult)}\n`);
}

/**
 * POST of a JSON body with node:http: the answer to /drain comes when the drain is over, which may be longer than
 * fetch's (undici's) 300 s header timeout; here there is none (the daemon bounds the wait by the drain's timeout,
 * and an interrupted command leaves the drain to the daemon).
 */
function postJson(url: string, headers: Record<string, string>, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => {
        let parsed: Record<string, unknown> = {};
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('error', reject).end(JSON.stringify(body));
  });
}

function describeDrain(r: ManualDrainResult): string {
  const where = `${r.service} -> ${r.server}`;
  if (r.phase === 'draining')
    return `draining ${where} at weight 0; the daemon ${r.after === 'remove' ? 'removes' : 'keeps'} it once drained`;
  const how = r.timedOut
    ? `timeout after ${(r.waitedMs / 1000).toFixed(1)} s with ${r.activeConns} active connections`
    : `drained in ${(r.waitedMs / 1000).toFixed(1)} s`;
  return `${r.phase === 'removed' ? 'removed' : 'drained'} ${where} (${how}); ${r.phase === 'removed' ? 'out of the service' : 'kept at weight 0'} until \`tiergate director undrain\``;
}

export type ApplyOpts = CommonOpts & { dryRun?: boolean; againstEmpty?: boolean };

function printDryRun(ops: readonly Parameters<typeof formatIpvsadmCommand>[0][], what: string): void {
  for (const op of ops) process.stdout.write(`${formatIpvsadmCommand(op)}\n`);
  process.stdout.write(`# ${ops.length} op${ops.length === 1 ? '' : 's'} (${what})\n`);
}

export async function applyCommand(opts: ApplyOpts): Promise<void> {
  if (opts.againstEmpty && !opts.dryRun)
    throw new TgError('TG_CONFIG_INVALID', '--against-empty plans without applying: use it with --dry-run');
  const { config, director, stateFile } = await load(opts);
  if (opts.againstEmpty) {
    // What `director apply` would do on a host whose table is empty: every real server healthy (as the daemon
    // starts), no state file, no kernel. The same ops, in the same order, as the first apply there.
    const desired = desiredEntries(config.virtual_services, new Map());
    printDryRun(
      plan(desired, [], configuredServiceKeys(config.virtual_services)),
      'dry run against an empty table: nothing read, nothing changed',
    );
    return;
  }
  await using driver = await openIpvsDriver(director.driver);
  const state = new FileStateStore(stateFile);
  const input = { services: config.virtual_services, driver, state, health: new Map<string, boolean>(), now: Date.now() };
  if (opts.dryRun) {
    const { ops } = await reconcileCycle({ ...input, dryRun: true });
    printDryRun(ops, 'dry run: nothing changed');
    return;
  }
  const host = await setupDirectorHost(director, config.virtual_services, driver);
  for (const line of [...host.changes, ...host.notes]) process.stdout.write(`host: ${line}\n`);
  const { ops, report } = await reconcileCycle(input);
  for (const op of ops) process.stdout.write(`${describeOp(op)}\n`);
  const tolerated = report?.tolerated.length ? `, ${report.tolerated.length} already done` : '';
  process.stdout.write(`applied ${ops.length} op${ops.length === 1 ? '' : 's'}${tolerated}\n`);
}

export async function runCommand(opts: CommonOpts): Promise<void> {
  const { config, director, stateFile } = await load(opts);
  const logger = createLogger(config.telemetry.logs.level, 'tiergate-director', logContext);
  // Spans per reconcile cycle and health transition (docs/telemetry.md); a no-op with tracing off.
  const telemetry = await startCommandTelemetry(config.telemetry, 'director', logger);
  try {
    await runDaemon(config, director, stateFile, logger, opts);
  } finally {
    // After the daemon stopped: flushes the last cycles' spans (bounded by the export timeout).
    await telemetry.shutdown();
  }
}

async function runDaemon(config: Config, director: DirectorCfg, stateFile: string, logger: Logger, opts: CommonOpts): Promise<void> {
  const driver = await openIpvsDriver(director.driver);
  let daemon: Director | undefined;
  let follower: SyncRoleFollower | undefined;
  let syncDriver: Awaited<ReturnType<typeof openIpvsDriver>> | undefined;
  try {
    const host = await setupDirectorHost(director, config.virtual_services, driver);
    for (const change of host.changes) logger.info({ change }, 'host setup');
    for (const note of host.notes) logger.info({ note }, 'host setup');
    daemon = new Director({
      name: director.name,
      services: config.virtual_services,
      driver,
      state: new FileStateStore(stateFile),
      intervalMs: director.reconcile_interval,
      resyncMs: director.resync_interval,
      logger,
      // A reload applies the sysctls again: a NAT service it adds needs ip_forward.
      host: { director },
    });
    await daemon.start();
    if (followsVrrp(director)) {
      // A VRRP pair: the sync daemon's role follows the VIP (sync-role.ts), on a netlink socket of its own so its
      // requests never interleave with a reconcile cycle's.
      syncDriver = await openIpvsDriver(director.driver);
      follower = new SyncRoleFollower({
        director,
        services: () => config.virtual_services,
        driver: syncDriver,
        logger,
        intervalMs: director.reconcile_interval,
      });
      await follower.start();
      const ha = syncDriver;
      daemon.metrics.setHaSource(() =>
        haStatus(director, config.virtual_services, defaultVrrpStatePath(director.name), () => ha.listDaemons()),
      );
    }
    const running = daemon;
    const onHup = () => void reloadDaemon(running, opts, logger);
    process.on('SIGHUP', onHup);
    const admin = await startAdminServer(daemon, { ...director.admin, metrics: config.telemetry.metrics.enabled }, logger);
    logger.info({ admin: admin.url, interval: director.reconcile_interval, stateFile }, 'director running');
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    process.off('SIGHUP', onHup);
    logger.info({}, 'stopping (the IPVS table is left as it is)');
    await admin.close();
  } finally {
    await follower?.stop();
    await syncDriver?.close();
    await daemon?.stop();
    await driver.close();
  }
}

/**
 * SIGHUP: re-read the file and hand its virtual services to the daemon, which applies the host sysctls they
 * need (ip_forward for NAT) and plans only the services that changed. An invalid file is logged and the running
 * config kept; the director entry's own settings (VIPs, `sysctls`, driver, intervals, admin) take a restart.
 */
async function reloadDaemon(daemon: Director, opts: CommonOpts, logger: Logger): Promise<void> {
  try {
    const { config } = await load(opts);
    await daemon.reload(config.virtual_services);
    logger.info({ services: config.virtual_services.length }, 'config reloaded');
  } catch (err) {
    logger.error({ err }, 'config reload rejected; the running config stays');
  }
}

export type StatusOpts = CommonOpts & { json?: boolean; vrrpStateFile?: string };

export async function statusCommand(opts: StatusOpts): Promise<void> {
  const { config, director, stateFile } = await load(opts);
  const status = (await fromDaemon(director)) ?? (await fromKernel(config, director, stateFile));
  // The VRRP role and the sync daemon are host state: read here (addresses, keepalived's notify file, the kernel's
  // GET_DAEMON), so they show whether the daemon runs or not.
  const ha = await haStatus(director, config.virtual_services, opts.vrrpStateFile ?? defaultVrrpStatePath(director.name), async () => {
    await using driver = await openIpvsDriver(director.driver);
    // Awaited here: the socket closes when this function returns.
    return await driver.listDaemons();
  });
  process.stdout.write(opts.json ? `${JSON.stringify({ ...status, ha }, null, 2)}\n` : formatStatusTable(status) + formatHaStatus(ha));
}

async function fromDaemon(director: DirectorCfg): Promise<DirectorStatus | undefined> {
  const { url, headers } = adminOf(director);
  try {
    const res = await fetch(`${url}/status`, { headers, signal: AbortSignal.timeout(2_000) });
    if (res.ok) return (await res.json()) as DirectorStatus;
  } catch {
    // No daemon listening: read the kernel instead.
  }
  return undefined;
}

async function fromKernel(config: Config, director: DirectorCfg, stateFile: string): Promise<DirectorStatus> {
  await using driver = await openIpvsDriver(director.driver);
  const managed = configuredServiceKeys(config.virtual_services);
  // Servers drained by hand are in the state file (readable by root, as the kernel's table is).
  const saved = await new FileStateStore(stateFile).load().catch(() => undefined);
  return buildStatus(`${director.name} (kernel; daemon not reachable, health unknown)`, await driver.listServices(), {
    managed,
    health: new Map(),
    draining: new Map(),
    cycles: 0,
    lastCycle: null,
    held: new Map(Object.entries(saved?.held ?? {})),
  });
}

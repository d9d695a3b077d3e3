import { spawn } from 'node:child_process';
import { TgError } from '@tiergate/errors';
import type { IpvsDestinationId, IpvsDriver } from './driver.ts';
import { ipvsErrnoError } from './errors.ts';
import { formatIpvsadmRestore, toIpvsadmArgs } from './ipvsadm/ipvsadm-args.ts';
import {
  type IpvsadmListRow,
  parseIpvsadmDaemons,
  parseIpvsadmList,
  parseIpvsadmSave,
  parseIpvsadmTimeouts,
  parseIpvsadmVersion,
} from './ipvsadm/ipvsadm-parse.ts';
import {
  describeService,
  destKey,
  type IpvsDaemon,
  type IpvsDaemonState,
  type IpvsDestination,
  type IpvsInfo,
  type IpvsService,
  type IpvsServiceEntry,
  type IpvsServiceId,
  type IpvsStats,
  type IpvsTimeouts,
  serviceKey,
} from './model.ts';
import { ERRNO } from './netlink/constants.ts';
import { applyIpvsOpsInTurn, type IpvsOp, type IpvsOpResult } from './ops.ts';

export interface IpvsadmDriverOptions {
  /** Path or name of the binary (default `ipvsadm`, looked up in PATH). */
  binary?: string;
  /** Bound on each ipvsadm run (default 10 s). */
  timeoutMs?: number;
}

/** Why an ipvsadm run failed, read from libipvs's messages, so callers can be idempotent without parsing text. */
export type IpvsadmFailure = 'not-installed' | 'not-loaded' | 'permission' | 'exists' | 'no-service' | 'not-found' | 'other';

export function classifyIpvsadmError(stderr: string): IpvsadmFailure {
  if (/Protocol not available|Can't initialize ipvs/i.test(stderr)) return 'not-loaded';
  if (/Permission denied|must be root|Operation not permitted/i.test(stderr)) return 'permission';
  if (/already exists/i.test(stderr)) return 'exists';
  if (/Service not defined|No such service/i.test(stderr)) return 'no-service';
  if (/No such destination|not found|Could not find/i.test(stderr)) return 'not-found';
  return 'other';
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  spawnError?: NodeJS.ErrnoException;
}

function run(binary: string, args: string[], timeoutMs: number, input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', (err) => resolve({ code: null, stdout, stderr, spawnError: err }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {}); // the child may exit before reading stdin; its exit status tells why
    child.stdin.end(input ?? '');
  });
}

/** Combines the columnar listings into reply-only fields of a parsed `-S` entry. */
function withCounters(entry: IpvsServiceEntry, lists: Record<'thresholds' | 'stats' | 'rate' | 'persist', Map<string, IpvsadmListRow>>) {
  const key = serviceKey(entry.service);
  const svcStats = toStats(lists.stats.get(key)?.values, lists.rate.get(key)?.values);
  if (svcStats) entry.service.stats = svcStats;
  for (const d of entry.destinations) {
    const dk = destKey(d);
    const thr = lists.thresholds.get(key)?.destinations.get(dk);
    const per = lists.persist.get(key)?.destinations.get(dk);
    if (thr) [d.upperThreshold, d.lowerThreshold, d.activeConns, d.inactConns] = thr.map(Number) as [number, number, number, number];
    if (per) d.persistConns = Number(per[1]);
    const stats = toStats(lists.stats.get(key)?.destinations.get(dk), lists.rate.get(key)?.destinations.get(dk));
    if (stats) d.stats = stats;
  }
  return entry;
}

function toStats(counters: bigint[] | undefined, rates: bigint[] | undefined): IpvsStats | undefined {
  if (!counters && !rates) return undefined;
  const [conns = 0n, inPkts = 0n, outPkts = 0n, inBytes = 0n, outBytes = 0n] = counters ?? [];
  const [cps = 0n, inPps = 0n, outPps = 0n, inBps = 0n, outBps = 0n] = rates ?? [];
  return { conns, inPkts, outPkts, inBytes, outBytes, cps, inPps, outPps, inBps, outBps };
}

/**
 * IpvsDriver through the `ipvsadm` binary (Debian's 1.31): a fallback and a diagnostic that
 * reads back what the netlink driver wrote. Listing runs `-S -n` for the rules and the columnar
 * listings for thresholds, counters, rates and persistent connections. It cannot see: the
 * timeout and netmask of non-persistent services (reported 0 and /32 or /128), a destination's
 * address family apart from its address, and the kernel's exact service flags beyond what `-S`
 * prints. Every failure is TG_IPVSADM_FAILED with `details.reason` (IpvsadmFailure).
 */
export class IpvsadmDriver implements IpvsDriver {
  readonly name = 'ipvsadm';
  readonly #binary: string;
  readonly #timeoutMs: number;

  constructor(options: IpvsadmDriverOptions = {}) {
    this.#binary = options.binary ?? 'ipvsadm';
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Creates the driver and checks that ipvsadm runs and the kernel has IPVS (`ipvsadm -L --timeout`). */
  static async open(options: IpvsadmDriverOptions = {}): Promise<IpvsadmDriver> {
    const driver = new IpvsadmDriver(options);
    await driver.getTimeouts();
    return driver;
  }

  /** Runs ipvsadm with the given arguments; resolves stdout or throws TG_IPVSADM_FAILED naming the op. */
  async run(args: string[], what: string, input?: string): Promise<string> {
    const r = await run(this.#binary, args, this.#timeoutMs, input);
    if (r.code === 0 && !r.spawnError) return r.stdout;
    const command = [this.#binary, ...args].join(' ');
    const reason: IpvsadmFailure = r.spawnError?.code === 'ENOENT' ? 'not-installed' : classifyIpvsadmError(r.stderr);
    const why =
      reason === 'not-installed'
        ? `${this.#binary} is not installed (Debian: apt-get install ipvsadm)`
        : r.spawnError
          ? r.spawnError.message
          : `exited with ${r.code ?? 'a signal (timed out?)'}: ${r.stderr.trim().replaceAll('\n', ' ') || 'no message'}`;
    throw new TgError('TG_IPVSADM_FAILED', `${what}: \`${command}\` ${why}`, {
      cause: r.spawnError,
      details: { reason, command, args, exitCode: r.code, stderr: r.stderr },
    });
  }

  async #save(): Promise<IpvsServiceEntry[]> {
    return parseIpvsadmSave(await this.run(['-S', '-n'], 'list services'));
  }

  async listServices(): Promise<IpvsServiceEntry[]> {
    const list = async (extra: string[]) => parseIpvsadmList(await this.run(['-L', '-n', ...extra], 'list services'));
    const [entries, thresholds, stats, rate, persist] = await Promise.all([
      this.#save(),
      list(['--thresholds']),
      list(['--stats', '--exact']),
      list(['--rate', '--exact']),
      list(['--persistent-conn']),
    ]);
    return entries.map((e) => withCounters(e, { thresholds, stats, rate, persist }));
  }

  async getService(id: IpvsServiceId): Promise<IpvsService | undefined> {
    return (await this.#save()).find((e) => serviceKey(e.service) === serviceKey(id))?.service;
  }

  async listDestinations(id: IpvsServiceId): Promise<IpvsDestination[]> {
    const entry = (await this.listServices()).find((e) => serviceKey(e.service) === serviceKey(id));
    if (!entry) throw ipvsErrnoError({ op: 'list destinations of', object: describeService(id) }, ERRNO.ESRCH, undefined);
    return entry.destinations;
  }

  async #op(op: IpvsOp, what: string): Promise<void> {
    await this.run(toIpvsadmArgs(op), what);
  }

  addService(service: IpvsService): Promise<void> {
    return this.#op({ kind: 'add-service', service }, `add service ${describeService(service)}`);
  }

  updateService(service: IpvsService): Promise<void> {
    return this.#op({ kind: 'update-service', service }, `update service ${describeService(service)}`);
  }

  deleteService(service: IpvsServiceId): Promise<void> {
    return this.#op({ kind: 'delete-service', service }, `delete service ${describeService(service)}`);
  }

  addDestination(service: IpvsServiceId, destination: IpvsDestination): Promise<void> {
    return this.#op(
      { kind: 'add-destination', service, destination },
      `add destination ${destKey(destination)} to ${describeService(service)}`,
    );
  }

  updateDestination(service: IpvsServiceId, destination: IpvsDestination): Promise<void> {
    const what = `update destination ${destKey(destination)} of ${describeService(service)}`;
    return this.#op({ kind: 'update-destination', service, destination }, what);
  }

  deleteDestination(service: IpvsServiceId, destination: IpvsDestinationId): Promise<void> {
    const what = `delete destination ${destKey(destination)} from ${describeService(service)}`;
    return this.#op({ kind: 'delete-destination', service, destination }, what);
  }

  /** One ipvsadm run per op (`-R` stops at the first failing line, so it cannot answer for every op). */
  applyBatch(ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
    return applyIpvsOpsInTurn(this, ops);
  }

  async getTimeouts(): Promise<IpvsTimeouts> {
    return parseIpvsadmTimeouts(await this.run(['-L', '--timeout'], 'get timeouts'));
  }

  setTimeouts(timeouts: Partial<IpvsTimeouts>): Promise<void> {
    return this.#op({ kind: 'set-timeouts', timeouts }, 'set timeouts');
  }

  startDaemon(daemon: IpvsDaemon): Promise<void> {
    return this.#op({ kind: 'start-daemon', daemon }, `start sync daemon ${daemon.state} on ${daemon.interface}`);
  }

  stopDaemon(state: IpvsDaemonState): Promise<void> {
    return this.#op({ kind: 'stop-daemon', state }, `stop sync daemon ${state}`);
  }

  async listDaemons(): Promise<IpvsDaemon[]> {
    return parseIpvsadmDaemons(await this.run(['-L', '--daemon'], 'list sync daemons'));
  }

  zero(service?: IpvsServiceId): Promise<void> {
    return this.#op(service === undefined ? { kind: 'zero' } : { kind: 'zero', service }, 'zero counters');
  }

  flush(): Promise<void> {
    return this.#op({ kind: 'flush' }, 'flush all services');
  }

  async info(): Promise<IpvsInfo> {
    return parseIpvsadmVersion(await this.run(['-L', '-n'], 'get IPVS info'));
  }

  /**
   * Applies ops in one `ipvsadm -R` run. Not atomic: ipvsadm stops at the first failing line and
   * the earlier lines stay applied (re-read the table after a failure).
   */
  async restore(ops: readonly IpvsOp[]): Promise<void> {
    await this.run(['-R'], `restore ${ops.length} rule(s)`, formatIpvsadmRestore(ops));
  }

  async close(): Promise<void> {}

  async [Symbol.asyncDispose](): Promise<void> {}
}

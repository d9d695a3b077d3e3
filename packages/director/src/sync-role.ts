import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import type { DeepReadonly, DirectorConfig } from '@tiergate/config';
import type { IpvsDaemon, IpvsDaemonState } from '@tiergate/ipvs';
import type { VirtualService } from './desired.ts';
import {
  type DaemonDriver,
  ensureSyncDaemon,
  hasAddress,
  holdsPairVip,
  pairVips,
  vipAddress,
  vipOwner,
  wantedSyncDaemon,
} from './host-setup.ts';
import type { Logger } from './logger.ts';

/**
 * The IPVS connection-sync daemon of a VRRP pair follows VIP ownership: master on the director that holds the VIP
 * (keepalived's MASTER adds it), backup on the other, switched on every transition — what keepalived's own
 * `lvs_sync_daemon` does. The director makes the switch, not a keepalived notify script:
 * - one writer of kernel IPVS state (the director already owns the table; keepalived has no virtual_server blocks);
 * - it reads the result (the VIP on the interface) rather than an event, so late or reordered notify scripts
 *   (keepalived forks one per transition, unordered) cannot leave the wrong role, and a restarted director
 *   finds the right role by itself;
 * - `ip monitor address` wakes it at the transition itself; the reconcile interval re-checks in case it missed one.
 * Why not run master and backup on both at all times (the kernel allows it): the standby has nothing to send, a
 * backup thread on the active director would take in a split-brain peer's entries over its own, and the
 * `backup_only` sysctl (no forwarding while a backup daemon runs) is only usable when the roles switch.
 */

export interface SyncRoleFollowerOptions {
  readonly director: DeepReadonly<DirectorConfig>;
  readonly services: () => readonly VirtualService[];
  readonly driver: DaemonDriver;
  readonly logger: Logger;
  /** Re-check this often even without an address event (ms). */
  readonly intervalMs: number;
}

/**
 * Keeps the sync daemon's role in step with VIP ownership while the director runs: re-checks on every address
 * change the kernel reports (`ip -o monitor address`, so the switch follows keepalived within its own time) and
 * every `intervalMs`. Checks never overlap; a failed one is logged and retried at the next trigger.
 */
export class SyncRoleFollower implements AsyncDisposable {
  readonly #o: SyncRoleFollowerOptions;
  #monitor: ChildProcess | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #again = false;
  #busy = false;
  #stopped = false;
  /** Completed checks (tests wait on it). */
  checks = 0;

  constructor(options: SyncRoleFollowerOptions) {
    this.#o = options;
  }

  /** Runs the first check, then follows. */
  async start(): Promise<void> {
    this.#watch();
    this.#timer = setInterval(() => this.trigger(), this.#o.intervalMs);
    this.#timer.unref();
    this.trigger();
    await this.#running;
  }

  /** Asks for a check; one arriving during a check runs once right after it. */
  trigger(): void {
    if (this.#stopped) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    this.#busy = true;
    this.#running = this.#loop();
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        const held = await holdsPairVip(this.#o.director, this.#o.services());
        for (const change of await ensureSyncDaemon(this.#o.director, held, this.#o.driver))
          this.#o.logger.info({ change }, 'sync daemon follows VRRP');
      } catch (err) {
        this.#o.logger.error({ err }, 'sync daemon role check failed; retried at the next address change or interval');
      }
      this.checks++;
    } while (this.#again && !this.#stopped);
    this.#busy = false;
  }

  #watch(): void {
    if (this.#stopped) return;
    // Every line is one address added or removed in this network namespace; any of them may be the VIP.
    const child = spawn('ip', ['-o', 'monitor', 'address'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.#monitor = child;
    child.stdout?.setEncoding('utf8').on('data', () => this.trigger());
    child.on('error', (err) => this.#o.logger.warn({ err }, 'ip monitor failed; the sync role is checked every interval only'));
    child.on('exit', () => {
      if (this.#monitor === child) this.#monitor = undefined;
      // Restarted after a pause, so a broken `ip` cannot spin.
      if (!this.#stopped) setTimeout(() => this.#watch(), 5_000).unref();
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#monitor?.kill();
    await this.#running;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

// ------------------------------------------------------------------ status

/** keepalived's view, as its notify script recorded it (infra/roles/director/templates/tiergate-vrrp-notify.j2). */
export interface VrrpStateRecord {
  /** MASTER, BACKUP, FAULT or STOP. */
  readonly state: string;
  /** When the script wrote it (ISO 8601). */
  readonly since: string;
}

/** The HA part of `tiergate director status`. */
export interface HaStatus {
  readonly vipOwner: 'director' | 'keepalived';
  /** Each pair VIP and whether it is on the director's interface now. */
  readonly vips: { address: string; held: boolean }[];
  /** From the notify script's state file; null when there is none (keepalived never ran its notify here). */
  readonly vrrp: VrrpStateRecord | null;
  /** What the kernel runs (IPVS_CMD_GET_DAEMON), or the error that prevented reading it. */
  readonly syncDaemons: IpvsDaemon[] | { error: string };
  /** The role this director should have now; null without a sync_daemon. */
  readonly wantedSync: IpvsDaemonState | null;
}

/** Reads the notify script's file: `STATE` on the first line; its mtime is when keepalived entered it. */
export async function readVrrpState(file: string): Promise<VrrpStateRecord | null> {
  try {
    const [text, st] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    const state = text.trim().split(/\s+/)[0] ?? '';
    return state ? { state, since: st.mtime.toISOString() } : null;
  } catch {
    return null;
  }
}

/** Where the director role's notify script writes keepalived's state for director `name`. */
export function defaultVrrpStatePath(name: string, dir = '/run/tiergate'): string {
  return `${dir}/vrrp-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.state`;
}

export async function haStatus(
  director: DeepReadonly<DirectorConfig>,
  services: readonly VirtualService[],
  vrrpStateFile: string,
  daemons: () => Promise<IpvsDaemon[]>,
): Promise<HaStatus> {
  const vips: { address: string; held: boolean }[] = [];
  for (const address of pairVips(director, services))
    vips.push({ address, held: await hasAddress(vipAddress(address, director.interface)).catch(() => false) });
  const syncDaemons = await daemons().catch((err: Error) => ({ error: err.message }));
  return {
    vipOwner: vipOwner(director),
    vips,
    vrrp: await readVrrpState(vrrpStateFile),
    syncDaemons,
    wantedSync:
      wantedSyncDaemon(
        director,
        vips.some((v) => v.held),
      )?.state ?? null,
  };
}

/** The HA lines of the status table. Pure. */
export function formatHaStatus(ha: HaStatus): string {
  const held = ha.vips.map((v) => `${v.address} ${v.held ? 'held' : 'not held'}`).join(', ') || 'none';
  // keepalived killed (or crashed) runs no notify script: a recorded MASTER without the VIP is stale, say so.
  const stale = ha.vrrp?.state === 'MASTER' && ha.vipOwner === 'keepalived' && ha.vips.length > 0 && !ha.vips.some((v) => v.held);
  const vrrp = ha.vrrp
    ? `${ha.vrrp.state} since ${ha.vrrp.since}${stale ? ' (recorded; no VIP here now: keepalived stopped without a notify?)' : ''}`
    : 'unknown (no keepalived notify state file)';
  const daemons =
    'error' in ha.syncDaemons
      ? `unknown (${ha.syncDaemons.error})`
      : ha.syncDaemons.map((d) => `${d.state} on ${d.interface} id ${d.syncId}`).join(', ') || 'none';
  const wanted = ha.wantedSync ? ` (wanted: ${ha.wantedSync})` : '';
  return [`VRRP: ${vrrp}; VIP (${ha.vipOwner}): ${held}`, `sync daemon: ${daemons}${wanted}`, ''].join('\n');
}

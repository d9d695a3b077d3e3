import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { promisify } from 'node:util';
import type { DeepReadonly, DirectorConfig } from '@tiergate/config';
import { isTgError, TgError } from '@tiergate/errors';
import type { IpvsDaemon, IpvsDaemonState, IpvsDriver } from '@tiergate/ipvs';
import type { VirtualService } from './desired.ts';

const execFileAsync = promisify(execFile);

/**
 * Host setup for the two ends of IPVS: the director (VIPs, sysctls, timeouts, sync daemon) and the real servers
 * (ARP sysctls, VIP on lo or tunl0). Every step reads first and writes only what differs, through the `ip`
 * command and /proc/sys (execFile, no shell). Sysctl keys here are /proc/sys-relative paths
 * (`net/ipv4/conf/eth0/arp_ignore`), because interface names may contain dots.
 */

/** `net.ipv4.vs.conntrack` → `net/ipv4/vs/conntrack`; slash forms pass through. Rejects anything leaving /proc/sys. */
export function sysctlPath(key: string): string {
  const path = key.includes('/') ? key : key.replaceAll('.', '/');
  if (!/^[A-Za-z0-9_./-]+$/.test(path) || path.split('/').some((p) => p === '..' || p === '.' || p === ''))
    throw new TgError('TG_CONFIG_INVALID', `'${key}' is not a sysctl name`);
  return path;
}

/** Where sysctls live; tests pass a directory of their own instead (a copy of the tree they need). */
export const PROC_SYS = '/proc/sys';

export async function readSysctl(path: string, root = PROC_SYS): Promise<string> {
  try {
    return (await readFile(`${root}/${path}`, 'utf8')).trim();
  } catch (cause) {
    throw new TgError('TG_HOST_SETUP', `cannot read sysctl ${path.replaceAll('/', '.')}: ${(cause as Error).message}`, { cause });
  }
}

export async function writeSysctl(path: string, value: string, root = PROC_SYS): Promise<void> {
  try {
    await writeFile(`${root}/${path}`, `${value}\n`);
  } catch (cause) {
    throw new TgError('TG_HOST_SETUP', `cannot set sysctl ${path.replaceAll('/', '.')}=${value}: ${(cause as Error).message}`, { cause });
  }
}

/** Runs `ip ARGS…`; TG_HOST_SETUP with ip's own message on failure. */
export async function ip(args: readonly string[]): Promise<string> {
  try {
    return (await execFileAsync('ip', [...args], { timeout: 10_000 })).stdout;
  } catch (cause) {
    const e = cause as { stderr?: string; message: string };
    throw new TgError('TG_HOST_SETUP', `ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`, { cause });
  }
}

interface IpAddrJson {
  ifname: string;
  flags?: string[];
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** `ip -j addr show`: interfaces with their addresses. */
export async function listAddresses(dev?: string): Promise<IpAddrJson[]> {
  return JSON.parse(await ip(['-j', 'addr', 'show', ...(dev ? ['dev', dev] : [])])) as IpAddrJson[];
}

/** A host address: VIPs are always /32 or /128, never wider (a wider prefix would capture the whole subnet). */
export interface HostAddress {
  readonly address: string;
  readonly prefix: number;
  readonly dev: string;
}

export function vipAddress(address: string, dev: string): HostAddress {
  return { address, prefix: isIPv6(address) ? 128 : 32, dev };
}

/** Whether the device has the address with exactly this prefix. */
export async function hasAddress(a: HostAddress): Promise<boolean> {
  const [link] = await listAddresses(a.dev);
  return link?.addr_info?.some((i) => i.local === a.address && i.prefixlen === a.prefix) ?? false;
}

/** Adds the address unless the device has it already. Returns whether it was added. */
export async function ensureAddress(a: HostAddress): Promise<boolean> {
  if (await hasAddress(a)) return false;
  await ip(['addr', 'add', `${a.address}/${a.prefix}`, 'dev', a.dev]);
  return true;
}

/** Sets a sysctl unless it already has the value. Returns the previous value when it changed it. */
export async function ensureSysctl(path: string, value: string, root = PROC_SYS): Promise<string | undefined> {
  const before = await readSysctl(path, root);
  if (before === value) return undefined;
  await writeSysctl(path, value, root);
  return before;
}

// ------------------------------------------------------------------ director host

/**
 * The sysctls a director needs (reference §5): expire connections of deleted real servers and persistence
 * templates of quiesced ones, so draining works; conntrack and ip_forward only for NAT. `director.sysctls`
 * comes last and wins. Pure.
 */
export function directorSysctls(director: DeepReadonly<DirectorConfig>, services: readonly VirtualService[]): Map<string, string> {
  const out = new Map<string, string>([
    ['net/ipv4/vs/expire_nodest_conn', '1'],
    ['net/ipv4/vs/expire_quiescent_template', '1'],
  ]);
  if (services.some((vs) => vs.forwarding === 'nat')) {
    out.set('net/ipv4/vs/conntrack', '1');
    out.set('net/ipv4/ip_forward', '1');
  }
  for (const [k, v] of Object.entries(director.sysctls)) out.set(sysctlPath(k), String(v));
  return out;
}

/**
 * The sysctl step of the director's host setup: `directorSysctls`, each written only when it differs. Run at
 * start and again on every reload, since the services decide some of them (a NAT service added by a reload
 * needs ip_forward and conntrack before it can forward). Returns one line per value changed.
 */
export async function applyDirectorSysctls(
  director: DeepReadonly<DirectorConfig>,
  services: readonly VirtualService[],
  root = PROC_SYS,
): Promise<string[]> {
  const changes: string[] = [];
  for (const [path, value] of directorSysctls(director, services)) {
    const before = await ensureSysctl(path, value, root);
    if (before !== undefined) changes.push(`sysctl ${path.replaceAll('/', '.')}=${value} (was ${before})`);
  }
  return changes;
}

export interface HostChanges {
  /** Human-readable lines, one per change made. */
  readonly changes: string[];
  /** Human-readable lines, one per thing deliberately left to someone else (VIPs keepalived owns). */
  readonly notes: string[];
}

/** Who adds and removes a director's VIPs on its interface. */
export type VipOwner = 'director' | 'keepalived';

/**
 * `director.vip_owner`, else keepalived when a sync daemon is configured: that makes the director one of a
 * failover pair, and a VIP held by both directors at once (each answering ARP for it) splits the traffic.
 */
export function vipOwner(director: DeepReadonly<DirectorConfig>): VipOwner {
  return director.vip_owner ?? (director.sync_daemon ? 'keepalived' : 'director');
}

/**
 * The VIPs as /32 (/128) on `director.interface`, only if absent — unless keepalived owns them: keepalived adds
 * a VIP on becoming MASTER and removes it on BACKUP, so the director neither adds nor removes it and only says
 * whether this host holds it now.
 */
export async function setupDirectorVips(director: DeepReadonly<DirectorConfig>): Promise<HostChanges> {
  const changes: string[] = [];
  const notes: string[] = [];
  const owner = vipOwner(director);
  const why = director.vip_owner ? 'vip_owner: keepalived' : 'vip_owner: keepalived, the default with a sync_daemon';
  for (const vip of director.vips) {
    const a = vipAddress(vip, director.interface);
    if (owner === 'keepalived') {
      const held = await hasAddress(a);
      notes.push(`VIP ${a.address} left to keepalived (${why}): ${held ? 'held' : 'not held'} on ${a.dev} now`);
    } else if (await ensureAddress(a)) changes.push(`ip addr add ${a.address}/${a.prefix} dev ${a.dev}`);
  }
  return { changes, notes };
}

/**
 * Prepares the director host, idempotently: the VIPs (above), the sysctls above, IPVS timeouts and the sync
 * daemon (in a VRRP pair: master if this host holds the VIP now, else backup). Needs ip_vs loaded (the driver's open does that) for net/ipv4/vs/*.
 */
export async function setupDirectorHost(
  director: DeepReadonly<DirectorConfig>,
  services: readonly VirtualService[],
  driver: Pick<IpvsDriver, 'setTimeouts'> & DaemonDriver,
): Promise<HostChanges> {
  const { changes, notes } = await setupDirectorVips(director);
  changes.push(...(await applyDirectorSysctls(director, services)));
  const t = director.timeouts;
  if (t) {
    // Config durations are ms; IPVS timeouts are whole seconds; 0 keeps the kernel's value.
    const s = (ms: number | undefined) => (ms === undefined ? 0 : Math.max(1, Math.ceil(ms / 1000)));
    await driver.setTimeouts({ tcp: s(t.tcp), tcpFin: s(t.tcp_fin), udp: s(t.udp) });
  }
  if (director.sync_daemon) changes.push(...(await ensureSyncDaemon(director, await holdsPairVip(director, services), driver)));
  return { changes, notes };
}

// ------------------------------------------------------------------ sync daemon of a VRRP pair
// Which role when, and why the director (not a keepalived notify script) switches it: see sync-role.ts.

/** The addresses whose presence on `interface` marks this host as the VRRP MASTER: `vips`, else the services' addresses. */
export function pairVips(director: DeepReadonly<DirectorConfig>, services: readonly VirtualService[]): string[] {
  if (director.vips.length > 0) return [...director.vips];
  return [...new Set(services.flatMap((vs) => (vs.address === undefined ? [] : [vs.address])))];
}

/** Whether the sync daemon's role follows the VIP: a sync daemon on a director whose VIPs keepalived moves. */
export function followsVrrp(director: DeepReadonly<DirectorConfig>): boolean {
  return director.sync_daemon !== undefined && vipOwner(director) === 'keepalived';
}

/** The sync daemon this director should run now: the VRRP-derived role when it follows VRRP, else the configured one. */
export function wantedSyncDaemon(director: DeepReadonly<DirectorConfig>, holdsVip: boolean): IpvsDaemon | undefined {
  const sync = director.sync_daemon;
  if (!sync) return undefined;
  const state: IpvsDaemonState = followsVrrp(director) ? (holdsVip ? 'master' : 'backup') : sync.state;
  return { state, interface: sync.interface, syncId: sync.sync_id };
}

export interface SyncDaemonPlan {
  /** Daemons to stop, by state. */
  readonly stop: IpvsDaemonState[];
  readonly start?: IpvsDaemon;
}

/**
 * From the running daemons to the wanted one. Pure. `exclusive`: stop the other role (a VRRP pair switches);
 * otherwise a daemon started by hand in the other role is left alone. A running daemon of the wanted role on
 * another interface or sync id is restarted (the kernel cannot change them in place).
 */
export function planSyncDaemons(wanted: IpvsDaemon, running: readonly IpvsDaemon[], exclusive: boolean): SyncDaemonPlan {
  const stop: IpvsDaemonState[] = [];
  const same = running.find((d) => d.state === wanted.state);
  if (exclusive) for (const d of running) if (d.state !== wanted.state) stop.push(d.state);
  if (same && (same.interface !== wanted.interface || same.syncId !== wanted.syncId)) stop.push(same.state);
  const fits = same && !stop.includes(same.state);
  return fits ? { stop } : { stop, start: wanted };
}

/** Whether this host holds any of the pair's VIPs on the director's interface now. */
export async function holdsPairVip(director: DeepReadonly<DirectorConfig>, services: readonly VirtualService[]): Promise<boolean> {
  for (const vip of pairVips(director, services)) if (await hasAddress(vipAddress(vip, director.interface))) return true;
  return false;
}

export type DaemonDriver = Pick<IpvsDriver, 'listDaemons' | 'startDaemon' | 'stopDaemon'>;

/**
 * Brings the kernel's sync daemons to the wanted role, reading first (idempotent). Returns one line per change.
 * `holdsVip` decides the role of a director that follows VRRP; others run the configured state.
 */
export async function ensureSyncDaemon(director: DeepReadonly<DirectorConfig>, holdsVip: boolean, driver: DaemonDriver): Promise<string[]> {
  const wanted = wantedSyncDaemon(director, holdsVip);
  if (!wanted) return [];
  const p = planSyncDaemons(wanted, await driver.listDaemons(), followsVrrp(director));
  const changes: string[] = [];
  for (const state of p.stop) {
    await driver.stopDaemon(state);
    changes.push(`sync daemon ${state} stopped`);
  }
  if (p.start) {
    await driver.startDaemon(p.start);
    const why = followsVrrp(director) ? (holdsVip ? ' (holds the VIP: VRRP MASTER)' : ' (does not hold the VIP: VRRP BACKUP)') : '';
    changes.push(`sync daemon ${p.start.state} on ${p.start.interface} (id ${p.start.syncId})${why}`);
  }
  return changes;
}

// ------------------------------------------------------------------ real-server host

/** What `realserver up` changed, so `down` can restore exactly the previous host. */
export interface RealServerState {
  /** Sysctl path → value before tiergate first changed it. */
  sysctls: Record<string, string>;
  /** Addresses tiergate added (never ones that were there before). */
  addresses: HostAddress[];
  /** Links tiergate brought up. */
  linksUp: string[];
  /** GUE receive ports (`ip fou add port P gue`) tiergate added; absent in state files of older versions. */
  fouPorts?: number[];
}

/** A fresh, empty RealServerState. */
export function emptyRealServerState(): RealServerState {
  return { sysctls: {}, addresses: [], linksUp: [], fouPorts: [] };
}

/** What a real server needs for the VIPs it serves. Pure. */
export interface RealServerPlan {
  readonly vips: HostAddress[];
  /** Sysctl path → value. */
  readonly sysctls: Map<string, string>;
  /** tunl0 (IPIP decapsulation) is needed. */
  readonly tunnel: boolean;
  /** UDP ports of GUE tunnels: each needs a FOU receive port, which hands the inner (ipip) packets to tunl0. */
  readonly fouPorts: number[];
  /** A GRE tunnel is used: packets arrive on ip_gre's fallback device gre0, which must be up. */
  readonly gre: boolean;
}

/**
 * The real-server recipe (reference §7). DR: the VIP /32 on lo. TUN: the VIP on tunl0, tunl0 up, rp_filter 0 on
 * tunl0 (decapsulated packets arrive there with the client's source). Both: arp_ignore=1 / arp_announce=2 on
 * `all` and the NIC (the kernel uses the max of the two, and ARP requests arrive on the NIC), so only the
 * director answers ARP for the VIP. NAT real servers need no VIP. `vips` limits the VIPs (default: every DR/TUN VIP).
 * GUE tunnels also need a FOU receive port on the tunnel's UDP port; GRE tunnels gre0 up with rp_filter 0.
 */
export function realServerPlan(services: readonly VirtualService[], nic: string, vips?: readonly string[]): RealServerPlan {
  const method = new Map<string, 'dr' | 'tun'>();
  for (const vs of services) {
    if (vs.address === undefined || vs.forwarding === 'nat') continue;
    if (method.get(vs.address) !== 'tun') method.set(vs.address, vs.forwarding);
  }
  const chosen = vips ?? [...method.keys()];
  const tunnel = chosen.some((v) => method.get(v) === 'tun');
  const tun = services.filter((vs) => vs.forwarding === 'tun' && chosen.includes(vs.address ?? ''));
  const gue = tun.filter((vs) => vs.tunnel?.type === 'gue');
  const fouPorts = [...new Set(gue.map((vs) => vs.tunnel?.port).filter((p) => p !== undefined))].sort((a, b) => a - b);
  const gre = tun.some((vs) => vs.tunnel?.type === 'gre');
  const sysctls = new Map<string, string>();
  for (const dev of ['all', nic]) {
    sysctls.set(`net/ipv4/conf/${dev}/arp_ignore`, '1');
    sysctls.set(`net/ipv4/conf/${dev}/arp_announce`, '2');
  }
  if (tunnel) sysctls.set('net/ipv4/conf/tunl0/rp_filter', '0');
  if (gre) sysctls.set('net/ipv4/conf/gre0/rp_filter', '0');
  return { vips: chosen.map((v) => vipAddress(v, method.get(v) === 'tun' ? 'tunl0' : 'lo')), sysctls, tunnel, fouPorts, gre };
}

/** The interface holding one of the configured real-server addresses (the NIC that receives ARP requests). */
export async function detectRealServerInterface(services: readonly VirtualService[]): Promise<string> {
  const mine = new Set(services.flatMap((vs) => vs.real_servers.map((rs) => rs.address)));
  for (const link of await listAddresses()) {
    if (link.ifname !== 'lo' && link.addr_info?.some((a) => mine.has(a.local))) return link.ifname;
  }
  throw new TgError('TG_HOST_SETUP', 'this host has none of the configured real-server addresses; pass --interface');
}

/**
 * Configures this host as a real server, idempotently, recording in `state` (mutated step by step, so the
 * caller can save it even when a later step fails) what it changed: the first-seen value of each sysctl, each
 * address and link it added. Running it twice changes nothing more.
 */
export async function realServerUp(p: RealServerPlan, state: RealServerState): Promise<void> {
  if (p.tunnel) await ensureTunnelDevice('tunl0', 'ipip', state);
  if (p.gre) await ensureTunnelDevice('gre0', 'ip_gre', state);
  for (const [path, value] of p.sysctls) {
    const before = await ensureSysctl(path, value);
    if (before !== undefined && !(path in state.sysctls)) state.sysctls[path] = before;
  }
  if (p.tunnel) {
    // Strict reverse-path filtering on `all` would still drop decapsulated packets (effective = max(all, tunl0)): make it loose.
    const before = await readSysctl('net/ipv4/conf/all/rp_filter');
    if (before === '1') {
      await writeSysctl('net/ipv4/conf/all/rp_filter', '2');
      if (!('net/ipv4/conf/all/rp_filter' in state.sysctls)) state.sysctls['net/ipv4/conf/all/rp_filter'] = before;
    }
  }
  for (const a of p.vips) if (await ensureAddress(a)) state.addresses.push(a);
  for (const port of p.fouPorts) {
    // `ip fou show` prints one `port P gue` line per receive port; the fou module loads on demand (genl alias).
    if (new RegExp(`^port ${port} gue\\b`, 'm').test(await ip(['fou', 'show']))) continue;
    await ip(['fou', 'add', 'port', String(port), 'gue']);
    state.fouPorts = [...(state.fouPorts ?? []), port];
  }
}

/** The fallback device a tunnel module creates in every network namespace (tunl0, gre0), loaded and up. */
async function ensureTunnelDevice(dev: 'tunl0' | 'gre0', module: 'ipip' | 'ip_gre', state: { linksUp: string[] }): Promise<void> {
  if (!existsSync(`/proc/sys/net/ipv4/conf/${dev}`)) {
    try {
      await execFileAsync('modprobe', [module], { timeout: 10_000 });
    } catch (cause) {
      throw new TgError('TG_HOST_SETUP', `TUN real servers need the ${module} module (${dev}); modprobe ${module} failed`, { cause });
    }
  }
  const [link] = await listAddresses(dev);
  if (!link?.flags?.includes('UP')) {
    await ip(['link', 'set', dev, 'up']);
    if (!state.linksUp.includes(dev)) state.linksUp.push(dev);
  }
}

/** Undoes `realServerUp`: removes the addresses and FOU ports it added, downs the links it upped, restores the sysctls. */
export async function realServerDown(state: RealServerState): Promise<string[]> {
  const done: string[] = [];
  for (const a of state.addresses) {
    try {
      await ip(['addr', 'del', `${a.address}/${a.prefix}`, 'dev', a.dev]);
      done.push(`ip addr del ${a.address}/${a.prefix} dev ${a.dev}`);
    } catch (err) {
      // Already gone (removed by hand): the goal holds.
      if (!isTgError(err, 'TG_HOST_SETUP') || !/Cannot assign|not exist|No such/i.test(err.message)) throw err;
    }
  }
  for (const port of state.fouPorts ?? []) {
    await ip(['fou', 'del', 'port', String(port)]);
    done.push(`ip fou del port ${port}`);
  }
  for (const dev of state.linksUp) {
    await ip(['link', 'set', dev, 'down']);
    done.push(`ip link set ${dev} down`);
  }
  for (const [path, value] of Object.entries(state.sysctls)) {
    await writeSysctl(path, value);
    done.push(`sysctl ${path.replaceAll('/', '.')}=${value}`);
  }
  return done;
}

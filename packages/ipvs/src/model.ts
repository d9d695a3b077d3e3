import { canonicalAddress, formatEndpoint } from './address.ts';

/**
 * The kernel-facing IPVS model: what a virtual service and a real server (destination) are in
 * `linux/ip_vs.h` terms, independent of the transport (netlink or ipvsadm). Addresses are text
 * (IPv4 dotted quad, IPv6 any valid form; keys canonicalise them).
 */

export type IpvsFamily = 'inet' | 'inet6';
export type IpvsProtocol = 'tcp' | 'udp' | 'sctp';
/** `local` is kernel-chosen (dest address is local to the director) and only appears in replies. */
export type IpvsForward = 'masq' | 'tunnel' | 'route' | 'local';
export type IpvsTunnelType = 'ipip' | 'gue' | 'gre';
export type IpvsTunnelChecksum = 'nocsum' | 'csum' | 'remcsum';

/**
 * Scheduler flags: the kernel has three anonymous bits (SCHED1..3); `sh` and `mh` name the first two.
 * `flag-N` is how ipvsadm names them for other schedulers.
 */
export type IpvsSchedFlag = 'sh-fallback' | 'sh-port' | 'mh-fallback' | 'mh-port' | 'flag-1' | 'flag-2' | 'flag-3';

export interface IpvsServiceFlags {
  /** Needed for persistence: a timeout alone does nothing. */
  persistent: boolean;
  /** UDP one-packet scheduling (ipvsadm `-o`). */
  onePacket: boolean;
  /** Sorted by bit (SCHED1, SCHED2, SCHED3) so equal flag sets compare equal. */
  schedFlags: IpvsSchedFlag[];
}

/** Counters since the last ZERO, and the estimator's per-second rates. */
export interface IpvsStats {
  conns: bigint;
  inPkts: bigint;
  outPkts: bigint;
  inBytes: bigint;
  outBytes: bigint;
  cps: bigint;
  inPps: bigint;
  outPps: bigint;
  inBps: bigint;
  outBps: bigint;
}

/** A service identified by protocol + address + port. */
export interface IpvsAddressServiceId {
  family: IpvsFamily;
  protocol: IpvsProtocol;
  address: string;
  port: number;
  fwmark?: undefined;
}

/** A service identified by a firewall mark (the same mark may exist once per family). */
export interface IpvsFwmarkServiceId {
  family: IpvsFamily;
  fwmark: number;
  protocol?: undefined;
  address?: undefined;
  port?: undefined;
}

/** What selects a service; the fields that cannot be edited (change = delete + add). */
export type IpvsServiceId = IpvsAddressServiceId | IpvsFwmarkServiceId;

interface IpvsServiceSettings {
  /** `rr`, `wrr`, `lc`, `wlc`, `sh`, `mh`, … or `none`. */
  scheduler: string;
  flags: IpvsServiceFlags;
  /** Persistence timeout in seconds (only meaningful with `flags.persistent`). */
  timeout: number;
  /** Persistence granularity: IPv4 dotted mask (`255.255.255.255`) or IPv6 prefix length (128). */
  netmask: string | number;
  /** Persistence engine (only `sip` exists). */
  peName?: string;
  /** Reply only. */
  stats?: IpvsStats;
}

/** A virtual service as written to and read from the kernel. */
export type IpvsService = IpvsServiceId & IpvsServiceSettings;

export interface IpvsTunnel {
  type: IpvsTunnelType;
  /** GUE destination UDP port (0 for ipip/gre). */
  port: number;
  checksum: IpvsTunnelChecksum;
}

/** A real server of a service. */
export interface IpvsDestination {
  address: string;
  port: number;
  /** Usually the service's family; may differ only for tunnel destinations. */
  family: IpvsFamily;
  forward: IpvsForward;
  /** 0 = quiescent: existing connections continue, no new ones. */
  weight: number;
  /** Connection thresholds, 0 = none. */
  upperThreshold: number;
  lowerThreshold: number;
  /** Only for `forward: 'tunnel'`. */
  tunnel?: IpvsTunnel;
  /** Reply only. */
  activeConns?: number;
  inactConns?: number;
  persistConns?: number;
  stats?: IpvsStats;
}

/** A service with its destinations, as `listServices()` returns it. */
export interface IpvsServiceEntry {
  service: IpvsService;
  destinations: IpvsDestination[];
}

/** Connection timeouts in seconds; 0 on write keeps the current value. */
export interface IpvsTimeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

export type IpvsDaemonState = 'master' | 'backup';

/** A connection-sync daemon (one master and one backup may run at once). */
export interface IpvsDaemon {
  state: IpvsDaemonState;
  interface: string;
  syncId: number;
  maxLen?: number;
  /** Multicast group, IPv4 or IPv6 (default 224.0.0.81). */
  group?: string;
  port?: number;
  ttl?: number;
}

export interface IpvsInfo {
  /** `1.2.1`. */
  version: string;
  versionCode: number;
  /** Connection hash-table buckets. */
  connTabSize: number;
}

/** The default (no-op) persistence netmask of a family: /32 or /128. */
export function defaultNetmask(family: IpvsFamily): string | number {
  return family === 'inet' ? '255.255.255.255' : 128;
}

/**
 * A stable identity string for diffing services: `tcp/192.0.2.10:80`, `udp/[2001:db8::10]:53`,
 * `fwmark/inet/7`. Addresses are canonicalised, so `2001:DB8::0010` and `2001:db8::10` agree.
 */
export function serviceKey(svc: IpvsServiceId): string {
  if (svc.fwmark !== undefined) return `fwmark/${svc.family}/${svc.fwmark}`;
  return `${svc.protocol}/${formatEndpoint(canonicalAddress(svc.address), svc.port)}`;
}

/** A stable identity string for a destination within its service: `10.0.0.11:80`, `[2001:db8::a]:80`. */
export function destKey(dest: Pick<IpvsDestination, 'address' | 'port'>): string {
  return formatEndpoint(canonicalAddress(dest.address), dest.port);
}

/** How ipvsadm names a service in messages: `TCP 192.0.2.10:80`, `FWM 7`, `FWM 7 (IPv6)`. */
export function describeService(svc: IpvsServiceId): string {
  if (svc.fwmark !== undefined) return `FWM ${svc.fwmark}${svc.family === 'inet6' ? ' (IPv6)' : ''}`;
  return `${svc.protocol.toUpperCase()} ${formatEndpoint(svc.address, svc.port)}`;
}

/** Only the identity fields of a service (what DEL/GET/ZERO and destination ops send). */
export function serviceIdOf(svc: IpvsServiceId): IpvsServiceId {
  return svc.fwmark !== undefined
    ? { family: svc.family, fwmark: svc.fwmark }
    : { family: svc.family, protocol: svc.protocol, address: svc.address, port: svc.port };
}

/** Stats with every counter at zero. */
export function emptyStats(): IpvsStats {
  return { conns: 0n, inPkts: 0n, outPkts: 0n, inBytes: 0n, outBytes: 0n, cps: 0n, inPps: 0n, outPps: 0n, inBps: 0n, outBps: 0n };
}

/** IPv4 masks compare as text, IPv6 prefixes as numbers (ipvsadm and YAML may give `64` or `'64'`). */
function normalNetmask(svc: IpvsService): string {
  return String(svc.netmask);
}

function schedFlagSet(flags: readonly IpvsSchedFlag[]): string {
  return [...flags].sort().join(',');
}

/**
 * Whether two services have the same identity and settings (stats ignored): what a reconciler
 * compares to decide on an update. Addresses are compared canonically, scheduler flags as sets.
 */
export function sameService(a: IpvsService, b: IpvsService): boolean {
  return (
    serviceKey(a) === serviceKey(b) &&
    a.family === b.family &&
    a.scheduler === b.scheduler &&
    a.flags.persistent === b.flags.persistent &&
    a.flags.onePacket === b.flags.onePacket &&
    schedFlagSet(a.flags.schedFlags) === schedFlagSet(b.flags.schedFlags) &&
    a.timeout === b.timeout &&
    normalNetmask(a) === normalNetmask(b) &&
    (a.peName ?? '') === (b.peName ?? '')
  );
}

/** The tunnel a tunnel destination effectively has (the kernel's default is ipip without checksum). */
export function effectiveTunnel(dest: IpvsDestination): IpvsTunnel | undefined {
  return dest.forward === 'tunnel' ? (dest.tunnel ?? { type: 'ipip', port: 0, checksum: 'nocsum' }) : undefined;
}

/**
 * Whether two destinations have the same identity and settings (counters and stats ignored).
 * `local` and `route` are equal: the kernel turns any destination with a local address into `local`.
 */
export function sameDestination(a: IpvsDestination, b: IpvsDestination): boolean {
  const fwd = (f: IpvsForward) => (f === 'local' ? 'route' : f);
  const ta = effectiveTunnel(a);
  const tb = effectiveTunnel(b);
  return (
    destKey(a) === destKey(b) &&
    a.family === b.family &&
    fwd(a.forward) === fwd(b.forward) &&
    a.weight === b.weight &&
    a.upperThreshold === b.upperThreshold &&
    a.lowerThreshold === b.lowerThreshold &&
    ta?.type === tb?.type &&
    ta?.port === tb?.port &&
    ta?.checksum === tb?.checksum
  );
}

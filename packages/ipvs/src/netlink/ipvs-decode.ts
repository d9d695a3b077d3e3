import { TgError } from '@tiergate/errors';
import { bytesToAddress } from '../address.ts';
import type {
  IpvsDaemon,
  IpvsDestination,
  IpvsFamily,
  IpvsForward,
  IpvsInfo,
  IpvsProtocol,
  IpvsSchedFlag,
  IpvsService,
  IpvsServiceId,
  IpvsStats,
  IpvsTimeouts,
  IpvsTunnel,
} from '../model.ts';
import type { NlAttrs } from './attributes.ts';
import {
  AF_INET,
  AF_INET6,
  CTRL_ATTR,
  IP_VS_CONN_F_FWD_MASK,
  IP_VS_SVC_F,
  IPPROTO,
  IPVS_CMD_ATTR,
  IPVS_DAEMON_ATTR,
  IPVS_DEST_ATTR,
  IPVS_INFO_ATTR,
  IPVS_STATS_ATTR,
  IPVS_SVC_ATTR,
} from './constants.ts';
import { schedFlagNames } from './ipvs-encode.ts';

function protocolError(message: string): TgError {
  return new TgError('TG_IPVS_PROTOCOL', message);
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw protocolError(`IPVS reply lacks ${what}`);
  return value;
}

export function familyOfAf(af: number): IpvsFamily {
  if (af === AF_INET) return 'inet';
  if (af === AF_INET6) return 'inet6';
  throw protocolError(`unknown address family ${af}`);
}

const PROTOCOL_NAMES = new Map<number, IpvsProtocol>(Object.entries(IPPROTO).map(([k, v]) => [v, k as IpvsProtocol]));
const FORWARD_NAMES: readonly IpvsForward[] = ['masq', 'local', 'tunnel', 'route'];
const TUNNEL_TYPES = ['ipip', 'gue', 'gre'] as const;

/** Stats from a STATS (mixed u32/u64) or STATS64 (all u64) nest; sizes decide, PAD and unknowns are skipped. */
export function decodeStats(a: NlAttrs): IpvsStats {
  const v = (t: number) => a.uint(t) ?? 0n;
  const S = IPVS_STATS_ATTR;
  return {
    conns: v(S.CONNS),
    inPkts: v(S.INPKTS),
    outPkts: v(S.OUTPKTS),
    inBytes: v(S.INBYTES),
    outBytes: v(S.OUTBYTES),
    cps: v(S.CPS),
    inPps: v(S.INPPS),
    outPps: v(S.OUTPPS),
    inBps: v(S.INBPS),
    outBps: v(S.OUTBPS),
  };
}

/** STATS64 when the kernel sent it (≥4.1), else the truncated legacy STATS. */
function pickStats(a: NlAttrs, stats64: number, stats: number): IpvsStats | undefined {
  const nest = a.nested(stats64) ?? a.nested(stats);
  return nest === undefined ? undefined : decodeStats(nest);
}

function decodeServiceId(a: NlAttrs, family: IpvsFamily): IpvsServiceId {
  const fwmark = a.u32(IPVS_SVC_ATTR.FWMARK);
  if (fwmark !== undefined && fwmark !== 0) return { family, fwmark };
  const protoNum = need(a.u16(IPVS_SVC_ATTR.PROTOCOL), 'service PROTOCOL');
  const protocol = PROTOCOL_NAMES.get(protoNum);
  if (protocol === undefined) throw protocolError(`unknown service protocol ${protoNum}`);
  const address = bytesToAddress(need(a.raw(IPVS_SVC_ATTR.ADDR), 'service ADDR'), family);
  return { family, protocol, address, port: need(a.be16(IPVS_SVC_ATTR.PORT), 'service PORT') };
}

function decodeNetmask(a: NlAttrs, family: IpvsFamily): string | number {
  const raw = need(a.raw(IPVS_SVC_ATTR.NETMASK), 'service NETMASK');
  if (raw.length < 4) throw protocolError('service NETMASK is shorter than 4 bytes');
  return family === 'inet' ? bytesToAddress(raw, 'inet') : raw.readUInt32LE(0);
}

function decodeSchedFlags(bits: number, scheduler: string): IpvsSchedFlag[] {
  const names = schedFlagNames(scheduler);
  const masks = [IP_VS_SVC_F.SCHED1, IP_VS_SVC_F.SCHED2, IP_VS_SVC_F.SCHED3];
  return names.filter((_, i) => (bits & (masks[i] as number)) !== 0);
}

/** A SERVICE nest of a GET_SERVICE reply. The kernel-internal HASHED flag is dropped. */
export function decodeService(a: NlAttrs): IpvsService {
  const family = familyOfAf(need(a.u16(IPVS_SVC_ATTR.AF), 'service AF'));
  const scheduler = need(a.string(IPVS_SVC_ATTR.SCHED_NAME), 'service SCHED_NAME');
  const bits = need(a.u32(IPVS_SVC_ATTR.FLAGS), 'service FLAGS');
  const svc: IpvsService = {
    ...decodeServiceId(a, family),
    scheduler,
    flags: {
      persistent: (bits & IP_VS_SVC_F.PERSISTENT) !== 0,
      onePacket: (bits & IP_VS_SVC_F.ONEPACKET) !== 0,
      schedFlags: decodeSchedFlags(bits, scheduler),
    },
    timeout: a.u32(IPVS_SVC_ATTR.TIMEOUT) ?? 0,
    netmask: decodeNetmask(a, family),
  };
  const pe = a.string(IPVS_SVC_ATTR.PE_NAME);
  if (pe !== undefined && pe !== '') svc.peName = pe;
  const stats = pickStats(a, IPVS_SVC_ATTR.STATS64, IPVS_SVC_ATTR.STATS);
  if (stats !== undefined) svc.stats = stats;
  return svc;
}

function decodeTunnel(a: NlAttrs): IpvsTunnel {
  const type = TUNNEL_TYPES[a.u8(IPVS_DEST_ATTR.TUN_TYPE) ?? 0];
  if (type === undefined) throw protocolError(`unknown tunnel type ${a.u8(IPVS_DEST_ATTR.TUN_TYPE)}`);
  const flags = a.u16(IPVS_DEST_ATTR.TUN_FLAGS) ?? 0;
  return { type, port: a.be16(IPVS_DEST_ATTR.TUN_PORT) ?? 0, checksum: flags & 2 ? 'remcsum' : flags & 1 ? 'csum' : 'nocsum' };
}

/**
 * A DEST nest of a GET_DEST reply. Kernels before 3.18 omit ADDR_FAMILY: the service's family is
 * used then. The tunnel is reported for tunnel destinations only (kernels send zeros for others).
 */
export function decodeDestination(a: NlAttrs, serviceFamily: IpvsFamily): IpvsDestination {
  const af = a.u16(IPVS_DEST_ATTR.ADDR_FAMILY);
  const family = af === undefined || af === 0 ? serviceFamily : familyOfAf(af);
  const fwd = need(a.u32(IPVS_DEST_ATTR.FWD_METHOD), 'destination FWD_METHOD') & IP_VS_CONN_F_FWD_MASK;
  const forward = FORWARD_NAMES[fwd];
  if (forward === undefined) throw protocolError(`unknown forwarding method ${fwd}`);
  const dest: IpvsDestination = {
    address: bytesToAddress(need(a.raw(IPVS_DEST_ATTR.ADDR), 'destination ADDR'), family),
    port: need(a.be16(IPVS_DEST_ATTR.PORT), 'destination PORT'),
    family,
    forward,
    weight: need(a.u32(IPVS_DEST_ATTR.WEIGHT), 'destination WEIGHT'),
    upperThreshold: a.u32(IPVS_DEST_ATTR.U_THRESH) ?? 0,
    lowerThreshold: a.u32(IPVS_DEST_ATTR.L_THRESH) ?? 0,
    activeConns: a.u32(IPVS_DEST_ATTR.ACTIVE_CONNS) ?? 0,
    inactConns: a.u32(IPVS_DEST_ATTR.INACT_CONNS) ?? 0,
    persistConns: a.u32(IPVS_DEST_ATTR.PERSIST_CONNS) ?? 0,
  };
  if (forward === 'tunnel') dest.tunnel = decodeTunnel(a);
  const stats = pickStats(a, IPVS_DEST_ATTR.STATS64, IPVS_DEST_ATTR.STATS);
  if (stats !== undefined) dest.stats = stats;
  return dest;
}

/** A DAEMON nest of a GET_DAEMON reply. */
export function decodeDaemon(a: NlAttrs): IpvsDaemon {
  const state = need(a.u32(IPVS_DAEMON_ATTR.STATE), 'daemon STATE');
  if (state !== 1 && state !== 2) throw protocolError(`unknown sync daemon state ${state}`);
  const d: IpvsDaemon = {
    state: state === 1 ? 'master' : 'backup',
    interface: need(a.string(IPVS_DAEMON_ATTR.MCAST_IFN), 'daemon MCAST_IFN'),
    syncId: need(a.u32(IPVS_DAEMON_ATTR.SYNC_ID), 'daemon SYNC_ID'),
  };
  const maxLen = a.u16(IPVS_DAEMON_ATTR.SYNC_MAXLEN);
  const g4 = a.raw(IPVS_DAEMON_ATTR.MCAST_GROUP);
  const g6 = a.raw(IPVS_DAEMON_ATTR.MCAST_GROUP6);
  const port = a.u16(IPVS_DAEMON_ATTR.MCAST_PORT);
  const ttl = a.u8(IPVS_DAEMON_ATTR.MCAST_TTL);
  if (maxLen !== undefined) d.maxLen = maxLen;
  if (g6 !== undefined) d.group = bytesToAddress(g6, 'inet6');
  else if (g4 !== undefined) d.group = bytesToAddress(g4, 'inet');
  if (port !== undefined) d.port = port;
  if (ttl !== undefined) d.ttl = ttl;
  return d;
}

/** The top-level attributes of a GET_CONFIG reply. */
export function decodeTimeouts(a: NlAttrs): IpvsTimeouts {
  return {
    tcp: need(a.u32(IPVS_CMD_ATTR.TIMEOUT_TCP), 'TIMEOUT_TCP'),
    tcpFin: need(a.u32(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN), 'TIMEOUT_TCP_FIN'),
    udp: need(a.u32(IPVS_CMD_ATTR.TIMEOUT_UDP), 'TIMEOUT_UDP'),
  };
}

/** The top-level attributes of a GET_INFO reply; version code 0x010201 reads `1.2.1`. */
export function decodeInfo(a: NlAttrs): IpvsInfo {
  const code = need(a.u32(IPVS_INFO_ATTR.VERSION), 'INFO_VERSION');
  return {
    version: `${(code >> 16) & 0xff}.${(code >> 8) & 0xff}.${code & 0xff}`,
    versionCode: code,
    connTabSize: need(a.u32(IPVS_INFO_ATTR.CONN_TAB_SIZE), 'INFO_CONN_TAB_SIZE'),
  };
}

/** What nlctrl tells about a generic-netlink family. */
export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  hdrSize: number;
  maxAttr: number;
}

/** A CTRL_CMD_NEWFAMILY reply. */
export function decodeFamily(a: NlAttrs): GenlFamily {
  return {
    id: need(a.u16(CTRL_ATTR.FAMILY_ID), 'CTRL_ATTR_FAMILY_ID'),
    name: a.string(CTRL_ATTR.FAMILY_NAME) ?? '',
    version: a.u32(CTRL_ATTR.VERSION) ?? 0,
    hdrSize: a.u32(CTRL_ATTR.HDRSIZE) ?? 0,
    maxAttr: a.u32(CTRL_ATTR.MAXATTR) ?? 0,
  };
}

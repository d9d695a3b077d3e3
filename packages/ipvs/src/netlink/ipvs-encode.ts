import { isIPv4, isIPv6 } from 'node:net';
import { TgError } from '@tiergate/errors';
import { addressToBytes, familyOfAddress } from '../address.ts';
import type {
  IpvsDaemon,
  IpvsDaemonState,
  IpvsDestination,
  IpvsFamily,
  IpvsSchedFlag,
  IpvsService,
  IpvsServiceId,
  IpvsTimeouts,
} from '../model.ts';
import { be16Attr, bytesAttr, encodeAttrs, type NlAttr, nestedAttr, stringAttr, u8Attr, u16Attr, u32Attr } from './attributes.ts';
import {
  AF_INET,
  AF_INET6,
  CTRL_ATTR,
  CTRL_CMD,
  GENL_ID_CTRL,
  IP_VS_CONN_F_FWD,
  IP_VS_STATE,
  IP_VS_SVC_F,
  IP_VS_TUNNEL_ENCAP_FLAG,
  IP_VS_TUNNEL_TYPE,
  IPPROTO,
  IPVS_CMD,
  IPVS_CMD_ATTR,
  IPVS_DAEMON_ATTR,
  IPVS_DEST_ATTR,
  IPVS_GENL_VERSION,
  IPVS_SVC_ATTR,
  NLM_F,
} from './constants.ts';
import { encodeGenlMessage, encodeGenlRequest } from './message.ts';

/** One IPVS request before framing: the command, do-or-dump, and its top-level attributes. */
export interface IpvsRequest {
  cmd: number;
  dump: boolean;
  attrs: NlAttr[];
}

/** Frames a request as a netlink message: REQUEST|ACK for do commands, REQUEST|DUMP for dumps. */
export function encodeIpvsRequest(familyId: number, seq: number, req: IpvsRequest): Buffer {
  const flags = req.dump ? NLM_F.REQUEST | NLM_F.DUMP : NLM_F.REQUEST | NLM_F.ACK;
  return encodeGenlRequest({ family: familyId, flags, seq }, { cmd: req.cmd, version: IPVS_GENL_VERSION }, req.attrs);
}

/** nlctrl CTRL_CMD_GETFAMILY for a family name (reference §1.3 golden bytes). */
export function encodeFamilyRequest(seq: number, name: string): Buffer {
  return encodeGenlMessage(
    { family: GENL_ID_CTRL, flags: NLM_F.REQUEST | NLM_F.ACK, seq },
    { cmd: CTRL_CMD.GETFAMILY, version: 1 },
    encodeAttrs([stringAttr(CTRL_ATTR.FAMILY_NAME, name)]),
  );
}

function invalid(message: string): TgError {
  return new TgError('TG_IPVS_INVALID', message);
}

export function afOf(family: IpvsFamily): number {
  return family === 'inet' ? AF_INET : AF_INET6;
}

function addressAttr(type: number, address: string, family: IpvsFamily, what: string): NlAttr {
  if (familyOfAddress(address) !== family) throw invalid(`${what} address ${address} is not ${family === 'inet' ? 'IPv4' : 'IPv6'}`);
  return bytesAttr(type, addressToBytes(address, family));
}

/** AF + (FWMARK | PROTOCOL + ADDR + PORT): what selects a service. */
export function serviceIdAttrs(id: IpvsServiceId): NlAttr[] {
  const attrs = [u16Attr(IPVS_SVC_ATTR.AF, afOf(id.family))];
  if (id.fwmark !== undefined) {
    if (id.fwmark < 1) throw invalid(`firewall mark must be at least 1, got ${id.fwmark}`);
    attrs.push(u32Attr(IPVS_SVC_ATTR.FWMARK, id.fwmark));
    return attrs;
  }
  const proto = IPPROTO[id.protocol];
  if (proto === undefined) throw invalid(`unknown protocol '${id.protocol}'`);
  attrs.push(
    u16Attr(IPVS_SVC_ATTR.PROTOCOL, proto),
    addressAttr(IPVS_SVC_ATTR.ADDR, id.address, id.family, 'service'),
    be16Attr(IPVS_SVC_ATTR.PORT, id.port),
  );
  return attrs;
}

const SCHED_FLAG_BITS: Record<IpvsSchedFlag, number> = {
  'sh-fallback': IP_VS_SVC_F.SCHED1,
  'sh-port': IP_VS_SVC_F.SCHED2,
  'mh-fallback': IP_VS_SVC_F.SCHED1,
  'mh-port': IP_VS_SVC_F.SCHED2,
  'flag-1': IP_VS_SVC_F.SCHED1,
  'flag-2': IP_VS_SVC_F.SCHED2,
  'flag-3': IP_VS_SVC_F.SCHED3,
};

/** The flag names the kernel's three scheduler bits carry for a scheduler (as ipvsadm names them). */
export function schedFlagNames(scheduler: string): [IpvsSchedFlag, IpvsSchedFlag, IpvsSchedFlag] {
  if (scheduler === 'sh') return ['sh-fallback', 'sh-port', 'flag-3'];
  if (scheduler === 'mh') return ['mh-fallback', 'mh-port', 'flag-3'];
  return ['flag-1', 'flag-2', 'flag-3'];
}

/** Service flags word; rejects scheduler flags that belong to another scheduler (as ipvsadm does). */
export function serviceFlagBits(svc: Pick<IpvsService, 'flags' | 'scheduler'>): number {
  let bits = (svc.flags.persistent ? IP_VS_SVC_F.PERSISTENT : 0) | (svc.flags.onePacket ? IP_VS_SVC_F.ONEPACKET : 0);
  const allowed = schedFlagNames(svc.scheduler);
  for (const f of svc.flags.schedFlags) {
    if (!allowed.includes(f))
      throw invalid(`scheduler flag '${f}' does not apply to scheduler '${svc.scheduler}' (allowed: ${allowed.join(', ')})`);
    bits |= SCHED_FLAG_BITS[f];
  }
  return bits;
}

/** NETMASK payload: IPv4 mask bytes in network order; IPv6 prefix length as a host-order u32. */
export function netmaskAttr(family: IpvsFamily, netmask: string | number): NlAttr {
  if (family === 'inet6') {
    const prefix = Number(netmask);
    if (!Number.isInteger(prefix) || prefix < 1 || prefix > 128)
      throw invalid(`IPv6 persistence netmask must be a prefix 1..128, got ${netmask}`);
    return u32Attr(IPVS_SVC_ATTR.NETMASK, prefix);
  }
  if (typeof netmask === 'number') {
    if (!Number.isInteger(netmask) || netmask < 0 || netmask > 32)
      throw invalid(`IPv4 persistence netmask prefix must be 0..32, got ${netmask}`);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(netmask === 0 ? 0 : (0xffffffff << (32 - netmask)) >>> 0);
    return bytesAttr(IPVS_SVC_ATTR.NETMASK, b);
  }
  if (!isIPv4(netmask)) throw invalid(`IPv4 persistence netmask must be dotted (255.255.255.0), got '${netmask}'`);
  return bytesAttr(IPVS_SVC_ATTR.NETMASK, addressToBytes(netmask).subarray(0, 4));
}

/** Identity plus every setting NEW_SERVICE/SET_SERVICE require (the kernel rejects a partial set). */
export function serviceFullAttrs(svc: IpvsService): NlAttr[] {
  if (svc.scheduler.length === 0 || svc.scheduler.length > 15) throw invalid(`scheduler name '${svc.scheduler}' must be 1..15 characters`);
  const flags = Buffer.alloc(8);
  flags.writeUInt32LE(serviceFlagBits(svc), 0);
  flags.writeUInt32LE(0xffffffff, 4);
  const attrs = [
    ...serviceIdAttrs(svc),
    stringAttr(IPVS_SVC_ATTR.SCHED_NAME, svc.scheduler),
    bytesAttr(IPVS_SVC_ATTR.FLAGS, flags),
    u32Attr(IPVS_SVC_ATTR.TIMEOUT, svc.timeout),
    netmaskAttr(svc.family, svc.netmask),
  ];
  if (svc.peName !== undefined && svc.peName !== '') attrs.push(stringAttr(IPVS_SVC_ATTR.PE_NAME, svc.peName));
  return attrs;
}

/** ADDR + PORT + ADDR_FAMILY: what selects a destination within its service. */
export function destIdAttrs(dest: Pick<IpvsDestination, 'address' | 'port' | 'family'>): NlAttr[] {
  return [
    addressAttr(IPVS_DEST_ATTR.ADDR, dest.address, dest.family, 'destination'),
    be16Attr(IPVS_DEST_ATTR.PORT, dest.port),
    u16Attr(IPVS_DEST_ATTR.ADDR_FAMILY, afOf(dest.family)),
  ];
}

/** Every setting NEW_DEST/SET_DEST require, plus the tunnel encapsulation for TUN destinations. */
export function destFullAttrs(dest: IpvsDestination): NlAttr[] {
  const fwd = IP_VS_CONN_F_FWD[dest.forward];
  if (fwd === undefined) throw invalid(`unknown forwarding method '${dest.forward}'`);
  const attrs = [
    ...destIdAttrs(dest),
    u32Attr(IPVS_DEST_ATTR.FWD_METHOD, fwd),
    u32Attr(IPVS_DEST_ATTR.WEIGHT, dest.weight),
    u32Attr(IPVS_DEST_ATTR.U_THRESH, dest.upperThreshold),
    u32Attr(IPVS_DEST_ATTR.L_THRESH, dest.lowerThreshold),
  ];
  if (dest.forward === 'tunnel' && dest.tunnel !== undefined) {
    const t = dest.tunnel;
    if (t.type === 'gue' && t.port === 0) throw invalid('a GUE tunnel needs a non-zero tunnel port');
    attrs.push(
      u8Attr(IPVS_DEST_ATTR.TUN_TYPE, IP_VS_TUNNEL_TYPE[t.type]),
      be16Attr(IPVS_DEST_ATTR.TUN_PORT, t.port),
      u16Attr(IPVS_DEST_ATTR.TUN_FLAGS, IP_VS_TUNNEL_ENCAP_FLAG[t.checksum]),
    );
  }
  return attrs;
}

/** NEW_DAEMON attributes; optional settings are sent only when given (kernels before 4.3 lack them). */
export function daemonAttrs(d: IpvsDaemon): NlAttr[] {
  const attrs = [
    u32Attr(IPVS_DAEMON_ATTR.STATE, IP_VS_STATE[d.state]),
    stringAttr(IPVS_DAEMON_ATTR.MCAST_IFN, d.interface),
    u32Attr(IPVS_DAEMON_ATTR.SYNC_ID, d.syncId),
  ];
  if (d.maxLen !== undefined) attrs.push(u16Attr(IPVS_DAEMON_ATTR.SYNC_MAXLEN, d.maxLen));
  if (d.group !== undefined) {
    attrs.push(
      isIPv6(d.group)
        ? bytesAttr(IPVS_DAEMON_ATTR.MCAST_GROUP6, addressToBytes(d.group))
        : bytesAttr(IPVS_DAEMON_ATTR.MCAST_GROUP, addressToBytes(d.group).subarray(0, 4)),
    );
  }
  if (d.port !== undefined) attrs.push(u16Attr(IPVS_DAEMON_ATTR.MCAST_PORT, d.port));
  if (d.ttl !== undefined) attrs.push(u8Attr(IPVS_DAEMON_ATTR.MCAST_TTL, d.ttl));
  return attrs;
}

const svc = (attrs: NlAttr[]) => nestedAttr(IPVS_CMD_ATTR.SERVICE, attrs);
const dst = (attrs: NlAttr[]) => nestedAttr(IPVS_CMD_ATTR.DEST, attrs);
const doReq = (cmd: number, attrs: NlAttr[] = []): IpvsRequest => ({ cmd, dump: false, attrs });

/** Builders for every IPVS command of reference §2.1 (GET_DEST and GET_DAEMON are dump-only). */
export const ipvsRequests = {
  newService: (s: IpvsService) => doReq(IPVS_CMD.NEW_SERVICE, [svc(serviceFullAttrs(s))]),
  setService: (s: IpvsService) => doReq(IPVS_CMD.SET_SERVICE, [svc(serviceFullAttrs(s))]),
  delService: (id: IpvsServiceId) => doReq(IPVS_CMD.DEL_SERVICE, [svc(serviceIdAttrs(id))]),
  getService: (id: IpvsServiceId) => doReq(IPVS_CMD.GET_SERVICE, [svc(serviceIdAttrs(id))]),
  dumpServices: (): IpvsRequest => ({ cmd: IPVS_CMD.GET_SERVICE, dump: true, attrs: [] }),
  newDest: (id: IpvsServiceId, d: IpvsDestination) => doReq(IPVS_CMD.NEW_DEST, [svc(serviceIdAttrs(id)), dst(destFullAttrs(d))]),
  setDest: (id: IpvsServiceId, d: IpvsDestination) => doReq(IPVS_CMD.SET_DEST, [svc(serviceIdAttrs(id)), dst(destFullAttrs(d))]),
  delDest: (id: IpvsServiceId, d: Pick<IpvsDestination, 'address' | 'port' | 'family'>) =>
    doReq(IPVS_CMD.DEL_DEST, [svc(serviceIdAttrs(id)), dst(destIdAttrs(d))]),
  dumpDests: (id: IpvsServiceId): IpvsRequest => ({ cmd: IPVS_CMD.GET_DEST, dump: true, attrs: [svc(serviceIdAttrs(id))] }),
  newDaemon: (d: IpvsDaemon) => doReq(IPVS_CMD.NEW_DAEMON, [nestedAttr(IPVS_CMD_ATTR.DAEMON, daemonAttrs(d))]),
  delDaemon: (state: IpvsDaemonState) =>
    doReq(IPVS_CMD.DEL_DAEMON, [nestedAttr(IPVS_CMD_ATTR.DAEMON, [u32Attr(IPVS_DAEMON_ATTR.STATE, IP_VS_STATE[state])])]),
  dumpDaemons: (): IpvsRequest => ({ cmd: IPVS_CMD.GET_DAEMON, dump: true, attrs: [] }),
  setConfig: (t: Partial<IpvsTimeouts>) =>
    doReq(IPVS_CMD.SET_CONFIG, [
      u32Attr(IPVS_CMD_ATTR.TIMEOUT_TCP, t.tcp ?? 0),
      u32Attr(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, t.tcpFin ?? 0),
      u32Attr(IPVS_CMD_ATTR.TIMEOUT_UDP, t.udp ?? 0),
    ]),
  getConfig: () => doReq(IPVS_CMD.GET_CONFIG),
  getInfo: () => doReq(IPVS_CMD.GET_INFO),
  zero: (id?: IpvsServiceId) => doReq(IPVS_CMD.ZERO, id === undefined ? [] : [svc(serviceIdAttrs(id))]),
  flush: () => doReq(IPVS_CMD.FLUSH),
};

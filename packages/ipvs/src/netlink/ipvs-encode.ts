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
import { encodeAttrs, stringAttr } from './attributes.ts';
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
import { encodeGenlMessage, GENL_HDRLEN, NLMSG_HDRLEN } from './message.ts';
import { NlWriter } from './writer.ts';

/**
 * One IPVS request before framing: the command, do-or-dump, and its top-level attributes, already encoded (the
 * builders validate and encode at once, so a bad value throws TG_IPVS_INVALID where the request is built).
 */
export interface IpvsRequest {
  cmd: number;
  dump: boolean;
  attrs: Buffer;
}

/** Frames a request as a netlink message: REQUEST|ACK for do commands, REQUEST|DUMP for dumps. */
export function encodeIpvsRequest(familyId: number, seq: number, req: IpvsRequest): Buffer {
  const flags = req.dump ? NLM_F.REQUEST | NLM_F.DUMP : NLM_F.REQUEST | NLM_F.ACK;
  const len = NLMSG_HDRLEN + GENL_HDRLEN + req.attrs.length;
  const out = Buffer.allocUnsafe(len);
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(familyId, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(seq >>> 0, 8);
  out.writeUInt32LE(0, 12);
  out[16] = req.cmd;
  out[17] = IPVS_GENL_VERSION;
  out.writeUInt16LE(0, 18);
  req.attrs.copy(out, NLMSG_HDRLEN + GENL_HDRLEN);
  return out;
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

function writeAddress(w: NlWriter, type: number, address: string, family: IpvsFamily, what: string): void {
  if (family === 'inet' && w.ipv4(type, address)) return;
  if (familyOfAddress(address) !== family) throw invalid(`${what} address ${address} is not ${family === 'inet' ? 'IPv4' : 'IPv6'}`);
  w.bytes(type, addressToBytes(address, family));
}

/** AF + (FWMARK | PROTOCOL + ADDR + PORT): what selects a service. */
export function writeServiceId(w: NlWriter, id: IpvsServiceId): void {
  w.u16(IPVS_SVC_ATTR.AF, afOf(id.family));
  if (id.fwmark !== undefined) {
    if (id.fwmark < 1) throw invalid(`firewall mark must be at least 1, got ${id.fwmark}`);
    w.u32(IPVS_SVC_ATTR.FWMARK, id.fwmark);
    return;
  }
  const proto = IPPROTO[id.protocol];
  if (proto === undefined) throw invalid(`unknown protocol '${id.protocol}'`);
  w.u16(IPVS_SVC_ATTR.PROTOCOL, proto);
  writeAddress(w, IPVS_SVC_ATTR.ADDR, id.address, id.family, 'service');
  w.be16(IPVS_SVC_ATTR.PORT, id.port);
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
export function writeNetmask(w: NlWriter, family: IpvsFamily, netmask: string | number): void {
  if (family === 'inet6') {
    const prefix = Number(netmask);
    if (!Number.isInteger(prefix) || prefix < 1 || prefix > 128)
      throw invalid(`IPv6 persistence netmask must be a prefix 1..128, got ${netmask}`);
    w.u32(IPVS_SVC_ATTR.NETMASK, prefix);
    return;
  }
  const mask = Buffer.alloc(4);
  if (typeof netmask === 'number') {
    if (!Number.isInteger(netmask) || netmask < 0 || netmask > 32)
      throw invalid(`IPv4 persistence netmask prefix must be 0..32, got ${netmask}`);
    mask.writeUInt32BE(netmask === 0 ? 0 : (0xffffffff << (32 - netmask)) >>> 0);
  } else if (netmask === '255.255.255.255') {
    mask.fill(0xff); // every non-persistent service: spare the text checks
  } else {
    if (!isIPv4(netmask)) throw invalid(`IPv4 persistence netmask must be dotted (255.255.255.0), got '${netmask}'`);
    addressToBytes(netmask, 'inet').copy(mask, 0, 0, 4);
  }
  w.bytes(IPVS_SVC_ATTR.NETMASK, mask);
}

/** Identity plus every setting NEW_SERVICE/SET_SERVICE require (the kernel rejects a partial set). */
export function writeServiceFull(w: NlWriter, svc: IpvsService): void {
  if (svc.scheduler.length === 0 || svc.scheduler.length > 15) throw invalid(`scheduler name '${svc.scheduler}' must be 1..15 characters`);
  const flags = Buffer.allocUnsafe(8);
  flags.writeUInt32LE(serviceFlagBits(svc), 0);
  flags.writeUInt32LE(0xffffffff, 4);
  writeServiceId(w, svc);
  w.string(IPVS_SVC_ATTR.SCHED_NAME, svc.scheduler);
  w.bytes(IPVS_SVC_ATTR.FLAGS, flags);
  w.u32(IPVS_SVC_ATTR.TIMEOUT, svc.timeout);
  writeNetmask(w, svc.family, svc.netmask);
  if (svc.peName !== undefined && svc.peName !== '') w.string(IPVS_SVC_ATTR.PE_NAME, svc.peName);
}

/** ADDR + PORT + ADDR_FAMILY: what selects a destination within its service. */
export function writeDestId(w: NlWriter, dest: Pick<IpvsDestination, 'address' | 'port' | 'family'>): void {
  writeAddress(w, IPVS_DEST_ATTR.ADDR, dest.address, dest.family, 'destination');
  w.be16(IPVS_DEST_ATTR.PORT, dest.port);
  w.u16(IPVS_DEST_ATTR.ADDR_FAMILY, afOf(dest.family));
}

/** Every setting NEW_DEST/SET_DEST require, plus the tunnel encapsulation for TUN destinations. */
export function writeDestFull(w: NlWriter, dest: IpvsDestination): void {
  const fwd = IP_VS_CONN_F_FWD[dest.forward];
  if (fwd === undefined) throw invalid(`unknown forwarding method '${dest.forward}'`);
  writeDestId(w, dest);
  w.u32(IPVS_DEST_ATTR.FWD_METHOD, fwd);
  w.u32(IPVS_DEST_ATTR.WEIGHT, dest.weight);
  w.u32(IPVS_DEST_ATTR.U_THRESH, dest.upperThreshold);
  w.u32(IPVS_DEST_ATTR.L_THRESH, dest.lowerThreshold);
  if (dest.forward === 'tunnel' && dest.tunnel !== undefined) {
    const t = dest.tunnel;
    if (t.type === 'gue' && t.port === 0) throw invalid('a GUE tunnel needs a non-zero tunnel port');
    w.u8(IPVS_DEST_ATTR.TUN_TYPE, IP_VS_TUNNEL_TYPE[t.type]);
    w.be16(IPVS_DEST_ATTR.TUN_PORT, t.port);
    w.u16(IPVS_DEST_ATTR.TUN_FLAGS, IP_VS_TUNNEL_ENCAP_FLAG[t.checksum]);
  }
}

/** NEW_DAEMON attributes; optional settings are sent only when given (kernels before 4.3 lack them). */
export function writeDaemon(w: NlWriter, d: IpvsDaemon): void {
  w.u32(IPVS_DAEMON_ATTR.STATE, IP_VS_STATE[d.state]);
  w.string(IPVS_DAEMON_ATTR.MCAST_IFN, d.interface);
  w.u32(IPVS_DAEMON_ATTR.SYNC_ID, d.syncId);
  if (d.maxLen !== undefined) w.u16(IPVS_DAEMON_ATTR.SYNC_MAXLEN, d.maxLen);
  if (d.group !== undefined) {
    if (isIPv6(d.group)) w.bytes(IPVS_DAEMON_ATTR.MCAST_GROUP6, addressToBytes(d.group));
    else w.bytes(IPVS_DAEMON_ATTR.MCAST_GROUP, addressToBytes(d.group).subarray(0, 4));
  }
  if (d.port !== undefined) w.u16(IPVS_DAEMON_ATTR.MCAST_PORT, d.port);
  if (d.ttl !== undefined) w.u8(IPVS_DAEMON_ATTR.MCAST_TTL, d.ttl);
}

/**
 * An IPVS command before encoding: `ipvsRequests` encodes one at once (validating it where it is built), and a
 * batch writes many straight into one buffer (`writeIpvsMessage`). `write` adds the top-level attributes.
 */
export interface IpvsCommand {
  readonly cmd: number;
  readonly dump: boolean;
  readonly write?: (w: NlWriter) => void;
}

/** The SERVICE nest of an identity: written once per identity object and writer, then copied (see nestedOnce). */
function serviceIdNest(w: NlWriter, id: IpvsServiceId): void {
  w.nestedOnce(IPVS_CMD_ATTR.SERVICE, id, () => writeServiceId(w, id));
}

function serviceNest(w: NlWriter, svc: IpvsService): void {
  const start = w.beginNested(IPVS_CMD_ATTR.SERVICE);
  writeServiceFull(w, svc);
  w.endNested(start);
}

function destNest(w: NlWriter, write: () => void): void {
  const start = w.beginNested(IPVS_CMD_ATTR.DEST);
  write();
  w.endNested(start);
}

const doCmd = (cmd: number, write?: (w: NlWriter) => void): IpvsCommand => ({ cmd, dump: false, write });
const dumpCmd = (cmd: number, write?: (w: NlWriter) => void): IpvsCommand => ({ cmd, dump: true, write });

/** Every IPVS command of reference §2.1, unencoded (GET_DEST and GET_DAEMON are dump-only). */
export const ipvsCommands = {
  newService: (s: IpvsService) => doCmd(IPVS_CMD.NEW_SERVICE, (w) => serviceNest(w, s)),
  setService: (s: IpvsService) => doCmd(IPVS_CMD.SET_SERVICE, (w) => serviceNest(w, s)),
  delService: (id: IpvsServiceId) => doCmd(IPVS_CMD.DEL_SERVICE, (w) => serviceIdNest(w, id)),
  getService: (id: IpvsServiceId) => doCmd(IPVS_CMD.GET_SERVICE, (w) => serviceIdNest(w, id)),
  dumpServices: () => dumpCmd(IPVS_CMD.GET_SERVICE),
  newDest: (id: IpvsServiceId, d: IpvsDestination) =>
    doCmd(IPVS_CMD.NEW_DEST, (w) => {
      serviceIdNest(w, id);
      destNest(w, () => writeDestFull(w, d));
    }),
  setDest: (id: IpvsServiceId, d: IpvsDestination) =>
    doCmd(IPVS_CMD.SET_DEST, (w) => {
      serviceIdNest(w, id);
      destNest(w, () => writeDestFull(w, d));
    }),
  delDest: (id: IpvsServiceId, d: Pick<IpvsDestination, 'address' | 'port' | 'family'>) =>
    doCmd(IPVS_CMD.DEL_DEST, (w) => {
      serviceIdNest(w, id);
      destNest(w, () => writeDestId(w, d));
    }),
  dumpDests: (id: IpvsServiceId) => dumpCmd(IPVS_CMD.GET_DEST, (w) => serviceIdNest(w, id)),
  newDaemon: (d: IpvsDaemon) =>
    doCmd(IPVS_CMD.NEW_DAEMON, (w) => {
      const start = w.beginNested(IPVS_CMD_ATTR.DAEMON);
      writeDaemon(w, d);
      w.endNested(start);
    }),
  delDaemon: (state: IpvsDaemonState) =>
    doCmd(IPVS_CMD.DEL_DAEMON, (w) => {
      const start = w.beginNested(IPVS_CMD_ATTR.DAEMON);
      w.u32(IPVS_DAEMON_ATTR.STATE, IP_VS_STATE[state]);
      w.endNested(start);
    }),
  dumpDaemons: () => dumpCmd(IPVS_CMD.GET_DAEMON),
  setConfig: (t: Partial<IpvsTimeouts>) =>
    doCmd(IPVS_CMD.SET_CONFIG, (w) => {
      w.u32(IPVS_CMD_ATTR.TIMEOUT_TCP, t.tcp ?? 0);
      w.u32(IPVS_CMD_ATTR.TIMEOUT_TCP_FIN, t.tcpFin ?? 0);
      w.u32(IPVS_CMD_ATTR.TIMEOUT_UDP, t.udp ?? 0);
    }),
  getConfig: () => doCmd(IPVS_CMD.GET_CONFIG),
  getInfo: () => doCmd(IPVS_CMD.GET_INFO),
  zero: (id?: IpvsServiceId) => doCmd(IPVS_CMD.ZERO, id === undefined ? undefined : (w) => serviceIdNest(w, id)),
  flush: () => doCmd(IPVS_CMD.FLUSH),
};

/**
 * Writes a command as one complete netlink message at the writer's end: REQUEST|ACK for do commands,
 * REQUEST|DUMP for dumps. On a throw (TG_IPVS_INVALID) the writer is left as it was.
 */
export function writeIpvsMessage(w: NlWriter, familyId: number, seq: number, command: IpvsCommand): void {
  const flags = command.dump ? NLM_F.REQUEST | NLM_F.DUMP : NLM_F.REQUEST | NLM_F.ACK;
  const start = w.beginMessage(familyId, flags, seq);
  try {
    w.genlHeader(command.cmd, IPVS_GENL_VERSION);
    command.write?.(w);
  } catch (err) {
    w.truncate(start);
    throw err;
  }
  w.endMessage(start);
}

// Single requests are encoded one at a time (synchronously), so one writer serves them all.
const single = new NlWriter();

/** A command with its attributes encoded now (throws TG_IPVS_INVALID for a bad value). */
export function toIpvsRequest({ cmd, dump, write }: IpvsCommand): IpvsRequest {
  single.reset();
  write?.(single);
  return { cmd, dump, attrs: single.take() };
}

/** A builder whose requests are encoded where they are built, so that a bad value throws there. */
function encoded<A extends unknown[]>(build: (...args: A) => IpvsCommand): (...args: A) => IpvsRequest {
  return (...args) => toIpvsRequest(build(...args));
}

/** Every IPVS command of reference §2.1, encoded (for one request at a time). */
export const ipvsRequests = {
  newService: encoded(ipvsCommands.newService),
  setService: encoded(ipvsCommands.setService),
  delService: encoded(ipvsCommands.delService),
  getService: encoded(ipvsCommands.getService),
  dumpServices: encoded(ipvsCommands.dumpServices),
  newDest: encoded(ipvsCommands.newDest),
  setDest: encoded(ipvsCommands.setDest),
  delDest: encoded(ipvsCommands.delDest),
  dumpDests: encoded(ipvsCommands.dumpDests),
  newDaemon: encoded(ipvsCommands.newDaemon),
  delDaemon: encoded(ipvsCommands.delDaemon),
  dumpDaemons: encoded(ipvsCommands.dumpDaemons),
  setConfig: encoded(ipvsCommands.setConfig),
  getConfig: encoded(ipvsCommands.getConfig),
  getInfo: encoded(ipvsCommands.getInfo),
  zero: encoded(ipvsCommands.zero),
  flush: encoded(ipvsCommands.flush),
};

import { TgError } from '@tiergate/errors';
import { align4, NlAttrs } from './attributes.ts';
import { AF_NETLINK, NLM_F, NLMSG, NLMSGERR_ATTR } from './constants.ts';

/** Size of `struct nlmsghdr`. */
export const NLMSG_HDRLEN = 16;
/** Size of `struct genlmsghdr`. */
export const GENL_HDRLEN = 4;

/** One netlink message: header fields and the payload after the 16-byte header. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

/** Builds one netlink message (header + payload, padded to 4 bytes). `pid` 0 addresses the kernel. */
export function encodeMessage(header: { type: number; flags: number; seq: number; pid?: number }, payload: Uint8Array): Buffer {
  const len = NLMSG_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(header.type, 4);
  out.writeUInt16LE(header.flags, 6);
  out.writeUInt32LE(header.seq >>> 0, 8);
  out.writeUInt32LE(header.pid ?? 0, 12);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/** Builds a generic-netlink message: genlmsghdr {cmd, version, 0} followed by encoded attributes. */
export function encodeGenlMessage(
  header: { family: number; flags: number; seq: number },
  genl: { cmd: number; version: number },
  attrs: Uint8Array,
): Buffer {
  const payload = Buffer.alloc(GENL_HDRLEN + attrs.length);
  payload.writeUInt8(genl.cmd, 0);
  payload.writeUInt8(genl.version, 1);
  payload.set(attrs, GENL_HDRLEN);
  return encodeMessage({ type: header.family, flags: header.flags, seq: header.seq }, payload);
}

/**
 * Splits one recv() buffer into messages, walking at NLMSG_ALIGN(nlmsg_len). A length below the
 * header size or past the buffer is a protocol error (the kernel never sends one; a bug would loop).
 */
export function splitMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new TgError('TG_IPVS_PROTOCOL', `netlink message at offset ${off} has bad length ${len} (buffer ${buf.length})`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/**
 * Whether recvfrom()'s sender address (`struct sockaddr_nl`: u16 family, u16 pad, u32 nl_pid, u32 nl_groups) is
 * the kernel: family AF_NETLINK and port id 0. Any other port id is a process's socket; with CAP_NET_ADMIN a
 * process may unicast to ours, and the kernel's answers always come from port id 0 (netlink(7)).
 */
export function fromKernel(sockaddr: Uint8Array): boolean {
  if (sockaddr.length < 8) return false;
  const view = new DataView(sockaddr.buffer, sockaddr.byteOffset, sockaddr.byteLength);
  return view.getUint16(0, true) === AF_NETLINK && view.getUint32(4, true) === 0;
}

/** A decoded generic-netlink message body. */
export interface GenlBody {
  cmd: number;
  version: number;
  attrs: NlAttrs;
}

/** Decodes genlmsghdr + attributes (IPVS and nlctrl have no family header, hdrsize 0). */
export function parseGenl(msg: NlMessage): GenlBody {
  if (msg.payload.length < GENL_HDRLEN)
    throw new TgError('TG_IPVS_PROTOCOL', `generic netlink message too short (${msg.payload.length} bytes)`);
  return {
    cmd: msg.payload.readUInt8(0),
    version: msg.payload.readUInt8(1),
    attrs: NlAttrs.parse(msg.payload.subarray(GENL_HDRLEN)),
  };
}

/** The content of an NLMSG_ERROR message: errno 0 is an ACK. */
export interface NlError {
  /** Positive errno (0 = success). */
  errno: number;
  /** Sequence number of the request it answers (from the echoed header). */
  requestSeq: number;
  requestType: number;
  /** NETLINK_EXT_ACK message text, when the kernel attached one. */
  extAckMessage?: string;
  /** Byte offset of the offending attribute in the request, when attached. */
  extAckOffset?: number;
}

/**
 * Decodes `struct nlmsgerr` {i32 error; nlmsghdr echoed; [echoed payload unless CAPPED]; [TLVs if ACK_TLVS]}.
 */
export function parseNlError(msg: NlMessage): NlError {
  const p = msg.payload;
  if (p.length < 4 + NLMSG_HDRLEN) throw new TgError('TG_IPVS_PROTOCOL', `netlink error message too short (${p.length} bytes)`);
  const error = p.readInt32LE(0);
  const echoedLen = p.readUInt32LE(4);
  const result: NlError = { errno: error === 0 ? 0 : -error, requestType: p.readUInt16LE(8), requestSeq: p.readUInt32LE(12) };
  if ((msg.flags & NLM_F.ACK_TLVS) === 0) return result;
  // With CAPPED only the echoed header is present; otherwise the whole request (or, on success, the header).
  const tlvOffset = 4 + ((msg.flags & NLM_F.CAPPED) !== 0 || error === 0 ? NLMSG_HDRLEN : align4(echoedLen));
  if (tlvOffset > p.length) return result;
  const tlv = NlAttrs.parse(p.subarray(tlvOffset));
  const text = tlv.string(NLMSGERR_ATTR.MSG);
  const offs = tlv.u32(NLMSGERR_ATTR.OFFS);
  if (text !== undefined) result.extAckMessage = text;
  if (offs !== undefined) result.extAckOffset = offs;
  return result;
}

/** The i32 error carried by NLMSG_DONE (0 normally; negative errno if the dump failed late). */
export function parseDoneError(msg: NlMessage): number {
  const error = msg.payload.length >= 4 ? msg.payload.readInt32LE(0) : 0;
  return error === 0 ? 0 : -error;
}

/** True for the message types that are netlink control rather than data. */
export function isControlMessage(type: number): boolean {
  return type === NLMSG.NOOP || type === NLMSG.ERROR || type === NLMSG.DONE || type === NLMSG.OVERRUN;
}

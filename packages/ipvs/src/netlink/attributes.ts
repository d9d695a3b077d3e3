import { TgError } from '@tiergate/errors';
import { NLA_F_NESTED, NLA_TYPE_MASK } from './constants.ts';

/**
 * Netlink attributes (TLVs): 4-byte header {u16 len, u16 type}, payload, zero pad to 4 bytes.
 * Integers are host order (little-endian on every platform tiergate targets) unless the kernel
 * declares network order, which the `be16` helpers cover.
 */

/** One attribute ready to encode; `value` is the payload without header or padding. */
export interface NlAttr {
  type: number;
  value: Uint8Array;
}

/** Rounds up to the 4-byte netlink alignment (NLA_ALIGN / NLMSG_ALIGN). */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** `value` when it is an integer in 0..max; TG_IPVS_INVALID naming `what` otherwise. */
export function checkUint(value: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new TgError('TG_IPVS_INVALID', `${what} must be an integer between 0 and ${max}, got ${value}`);
  }
  return value;
}

export function bytesAttr(type: number, value: Uint8Array): NlAttr {
  return { type, value };
}

// Scalar payloads come from Buffer's shared pool (allocUnsafe; every byte is written): a full apply encodes
// ~100,000 attributes, and a fresh ArrayBuffer for each (Buffer.alloc) was most of the cost of encoding.

export function u8Attr(type: number, value: number): NlAttr {
  const b = Buffer.allocUnsafe(1);
  b[0] = checkUint(value, 0xff, `attribute ${type}`);
  return { type, value: b };
}

export function u16Attr(type: number, value: number): NlAttr {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16LE(checkUint(value, 0xffff, `attribute ${type}`));
  return { type, value: b };
}

/** A u16 in network byte order (ports). */
export function be16Attr(type: number, value: number): NlAttr {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(checkUint(value, 0xffff, `attribute ${type}`));
  return { type, value: b };
}

export function u32Attr(type: number, value: number): NlAttr {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(checkUint(value, 0xffffffff, `attribute ${type}`));
  return { type, value: b };
}

export function u64Attr(type: number, value: bigint): NlAttr {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64LE(value);
  return { type, value: b };
}

/** A NUL-terminated string (the kernel's NLA_NUL_STRING policy rejects a missing NUL). */
export function stringAttr(type: number, value: string): NlAttr {
  return { type, value: Buffer.from(`${value}\0`, 'utf8') };
}

/** A nested attribute; sets NLA_F_NESTED as modern kernels expect (IPVS accepts either). */
export function nestedAttr(type: number, children: readonly NlAttr[]): NlAttr {
  return { type: type | NLA_F_NESTED, value: encodeAttrs(children) };
}

/** Bytes the attributes take encoded, each padded to 4 bytes. */
export function attrsSize(attrs: readonly NlAttr[]): number {
  let size = 0;
  for (const a of attrs) size += align4(4 + a.value.length);
  return size;
}

/** Writes attributes back to back into `out` from `off` (padding zeroed); returns the offset after them. */
export function writeAttrs(out: Buffer, off: number, attrs: readonly NlAttr[]): number {
  let at = off;
  for (const a of attrs) {
    const len = 4 + a.value.length;
    if (len > 0xffff) throw new TgError('TG_IPVS_INVALID', `attribute ${a.type} is too long (${len} bytes)`);
    out.writeUInt16LE(len, at);
    out.writeUInt16LE(a.type, at + 2);
    out.set(a.value, at + 4);
    const end = at + align4(len);
    if (end > at + len) out.fill(0, at + len, end);
    at = end;
  }
  return at;
}

/** Serialises attributes back to back, each padded to 4 bytes. */
export function encodeAttrs(attrs: readonly NlAttr[]): Buffer {
  const out = Buffer.allocUnsafe(attrsSize(attrs));
  writeAttrs(out, 0, attrs);
  return out;
}

function protocolError(message: string): TgError {
  return new TgError('TG_IPVS_PROTOCOL', message);
}

/**
 * Parsed attributes of one level, by type. Types are masked with NLA_TYPE_MASK because the kernel's
 * IPVS replies do not set NLA_F_NESTED while requests may; unknown types are kept but ignored by
 * callers, so newer kernels adding attributes do not break decoding.
 */
export class NlAttrs {
  // Payload offsets into #buf by type, not a Buffer per attribute: a dump of 10,000 destinations reads a
  // few of ~20 attributes each, and allocating a view for every one was a visible share of a reconcile cycle.
  readonly #buf: Buffer;
  readonly #at = new Map<number, number>();

  private constructor(buf: Buffer) {
    this.#buf = buf;
  }

  /** Parses a run of attributes; throws TG_IPVS_PROTOCOL on a length that leaves the buffer. */
  static parse(buf: Buffer): NlAttrs {
    const attrs = new NlAttrs(buf);
    let off = 0;
    while (off + 4 <= buf.length) {
      const len = buf.readUInt16LE(off);
      const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
      if (len < 4 || off + len > buf.length) throw protocolError(`attribute ${type} at offset ${off} has bad length ${len}`);
      attrs.#at.set(type, off + 4);
      off += align4(len);
    }
    return attrs;
  }

  has(type: number): boolean {
    return this.#at.has(type);
  }

  types(): number[] {
    return [...this.#at.keys()];
  }

  /** Payload length of an attribute at payload offset `at` (its header's length minus the header). */
  #len(at: number): number {
    return this.#buf.readUInt16LE(at - 4) - 4;
  }

  raw(type: number): Buffer | undefined {
    const at = this.#at.get(type);
    return at === undefined ? undefined : this.#buf.subarray(at, at + this.#len(at));
  }

  /** The payload offset of `type` after checking it holds at least `size` bytes. */
  #sized(type: number, size: number): number | undefined {
    const at = this.#at.get(type);
    if (at === undefined) return undefined;
    const len = this.#len(at);
    if (len < size) throw protocolError(`attribute ${type} has ${len} bytes, expected ${size}`);
    return at;
  }

  u8(type: number): number | undefined {
    const at = this.#sized(type, 1);
    return at === undefined ? undefined : this.#buf.readUInt8(at);
  }

  u16(type: number): number | undefined {
    const at = this.#sized(type, 2);
    return at === undefined ? undefined : this.#buf.readUInt16LE(at);
  }

  be16(type: number): number | undefined {
    const at = this.#sized(type, 2);
    return at === undefined ? undefined : this.#buf.readUInt16BE(at);
  }

  u32(type: number): number | undefined {
    const at = this.#sized(type, 4);
    return at === undefined ? undefined : this.#buf.readUInt32LE(at);
  }

  u64(type: number): bigint | undefined {
    const at = this.#sized(type, 8);
    return at === undefined ? undefined : this.#buf.readBigUInt64LE(at);
  }

  /** A u32 or u64 by payload size (legacy IPVS STATS mixes both). */
  uint(type: number): bigint | undefined {
    const at = this.#at.get(type);
    if (at === undefined) return undefined;
    const len = this.#len(at);
    if (len >= 8) return this.#buf.readBigUInt64LE(at);
    if (len >= 4) return BigInt(this.#buf.readUInt32LE(at));
    throw protocolError(`attribute ${type} has ${len} bytes, expected 4 or 8`);
  }

  /** A string up to its first NUL (or the whole payload if it has none). */
  string(type: number): string | undefined {
    const v = this.raw(type);
    if (v === undefined) return undefined;
    const nul = v.indexOf(0);
    return v.toString('utf8', 0, nul === -1 ? v.length : nul);
  }

  nested(type: number): NlAttrs | undefined {
    const v = this.raw(type);
    return v === undefined ? undefined : NlAttrs.parse(v);
  }
}

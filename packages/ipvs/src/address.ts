import { isIPv4, isIPv6 } from 'node:net';
import { TgError } from '@tiergate/errors';
import type { IpvsFamily } from './model.ts';

/**
 * IP text ⇄ bytes for the kernel's `union nf_inet_addr`. Hand-written because node:net has no
 * inet_pton/inet_ntop; canonical IPv6 text (RFC 5952) comes from the WHATWG URL host serialiser.
 */

/** The family of an IP literal; throws TG_IPVS_INVALID for anything else (host names included). */
export function familyOfAddress(address: string): IpvsFamily {
  // parseIpv4 first: a full apply asks this ~20,000 times, nearly always of an IPv4 literal.
  if (parseIpv4(address) !== -1 || isIPv4(address)) return 'inet';
  if (isIPv6(address)) return 'inet6';
  throw new TgError('TG_IPVS_INVALID', `'${address}' is not an IPv4 or IPv6 address`);
}

/**
 * 16 bytes as the kernel wants them: IPv4 in bytes 0–3 and zeros after, IPv6 in network order. `family`, when
 * the caller has checked it already, spares a second look at the text.
 */
export function addressToBytes(address: string, family: IpvsFamily = familyOfAddress(address)): Buffer {
  const out = Buffer.alloc(16);
  if (family === 'inet') {
    writeIpv4(address, out);
    return out;
  }
  let text = address;
  const v4tail = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4tail) {
    const b = Buffer.alloc(4);
    writeIpv4(v4tail[1] as string, b);
    text = `${text.slice(0, v4tail.index)}:${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

/** The four octets of a valid IPv4 literal into out[0..3]. */
function writeIpv4(address: string, out: Buffer): void {
  // Hot when a full apply encodes thousands of addresses: no intermediate arrays or buffers.
  let octet = 0;
  let i = 0;
  for (let c = 0; c < address.length; c++) {
    const code = address.charCodeAt(c);
    if (code === 46) {
      out[i++] = octet;
      octet = 0;
    } else octet = octet * 10 + code - 48;
  }
  out[i] = octet;
}

/** Text form of a kernel address: dotted quad for inet (first 4 bytes), RFC 5952 for inet6. */
export function bytesToAddress(bytes: Uint8Array, family: IpvsFamily): string {
  if (family === 'inet') return `${bytes[0] ?? 0}.${bytes[1] ?? 0}.${bytes[2] ?? 0}.${bytes[3] ?? 0}`;
  const b = Buffer.alloc(16);
  b.set(bytes.subarray(0, 16));
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return canonicalIPv6(groups.join(':'));
}

// Every reconcile cycle canonicalises the same addresses (one per real server, several times): a bounded memo
// saves the validating regexes, the bulk of building service and destination keys.
const canonicalMemo = new Map<string, string>();
const CANONICAL_MEMO_MAX = 65_536;

/** The canonical text of an IP literal, so keys built from user input and kernel replies agree. */
export function canonicalAddress(address: string): string {
  const hit = canonicalMemo.get(address);
  if (hit !== undefined) return hit;
  const canonical = familyOfAddress(address) === 'inet' ? address : canonicalIPv6(address);
  if (canonicalMemo.size >= CANONICAL_MEMO_MAX) canonicalMemo.clear();
  canonicalMemo.set(address, canonical);
  return canonical;
}

function canonicalIPv6(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** `a.b.c.d:port` or `[v6]:port`, as ipvsadm prints endpoints. */
export function formatEndpoint(address: string, port: number): string {
  // Every IPv6 literal has a colon and no IPv4 one does; cheaper than isIPv6's regex on the reconcile hot path.
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A dotted quad as a u32 (first octet highest), or -1 unless it is what node:net's isIPv4 accepts. */
export function parseIpv4(address: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let c = 0; c < address.length; c++) {
    const code = address.charCodeAt(c);
    if (code === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots += 1;
    } else if (code >= 48 && code <= 57) {
      if (digits > 0 && octet === 0) return -1; // a leading zero
      octet = octet * 10 + code - 48;
      digits += 1;
      if (octet > 255) return -1;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

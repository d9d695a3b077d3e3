// Address parsing without zod (the schemas built on it are in address-schema.ts): the serving processes use these
// through @tiergate/config/runtime, which loads neither zod nor yaml.
import { BlockList, isIP, isIPv4 } from 'node:net';

/** A CIDR block (`10.0.0.0/8`, `::1/128`) or a single address (taken as /32 or /128); undefined when malformed. */
export function parseCidr(v: string): { address: string; prefix: number; family: 4 | 6 } | undefined {
  const [addr, len, ...rest] = v.split('/');
  if (rest.length > 0 || addr === undefined) return undefined;
  const family = isIP(addr);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (len !== undefined && !/^\d+$/.test(len))) return undefined;
  return { address: addr, prefix, family: family as 4 | 6 };
}

/** Builds a node:net BlockList from validated CIDR strings (IPv4-mapped IPv6 peers match IPv4 rules). */
export function toBlockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (!p) throw new RangeError(`not a CIDR: ${c}`);
    list.addSubnet(p.address, p.prefix, p.family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** Splits a validated `host:port` / `[v6]:port` into its parts; undefined when malformed. */
export function splitHostPort(v: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(v);
  const host = m?.[1] ?? m?.[2];
  const p = Number(m?.[3]);
  if (!m || !host || p < 1 || p > 65535 || (m[1] !== undefined && isIP(m[1]) !== 6)) return undefined;
  return { host, port: p };
}

export function familyOf(address: string): 'inet' | 'inet6' {
  return isIPv4(address) ? 'inet' : 'inet6';
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/**
 * True for addresses only this host reaches: 127.0.0.0/8, ::1 (any spelling, bracketed or not), their
 * IPv4-mapped form, and the name `localhost`. The one check the admin, session-cookie and validate rules share.
 */
export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

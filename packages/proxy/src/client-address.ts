import type { BlockList } from 'node:net';
import { isIP } from 'node:net';

/**
 * An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, what a dual-stack listener reports for IPv4 clients)
 * as its IPv4 form, so X-Real-IP, X-Forwarded-For and ip_hash see the address the client has.
 */
export function unmapIPv4(address: string): string {
  return address.length > 7 && address.charCodeAt(0) === 58 && address.startsWith('::ffff:') && address.includes('.', 7)
    ? address.slice(7)
    : address;
}

function familyOf(address: string): 'ipv4' | 'ipv6' | undefined {
  const f = isIP(address);
  return f === 4 ? 'ipv4' : f === 6 ? 'ipv6' : undefined;
}

/** Whether `address` lies in the trusted ranges; an empty list trusts nobody (no per-request work). */
export function isTrusted(trusted: BlockList | undefined, address: string): boolean {
  if (!trusted) return false;
  const family = familyOf(address);
  return family !== undefined && trusted.check(address, family);
}

/**
 * The client address the way nginx's realip module finds it (`set_real_ip_from` + `real_ip_header
 * X-Forwarded-For`): only when the peer is trusted is the header believed. With `recursive`, the
 * list is walked from the right, skipping trusted addresses; the first untrusted one is the client
 * (all trusted: the left-most). Without it, the right-most entry is the client. A malformed entry
 * stops the walk and the last good address is kept. Without X-Forwarded-For, X-Real-IP is used.
 */
export function realClientAddress(
  peer: string,
  trusted: BlockList | undefined,
  recursive: boolean,
  xff: string | undefined,
  xRealIp: string | undefined,
): string {
  if (!isTrusted(trusted, peer)) return peer;
  if (xff === undefined || xff === '') {
    const real = xRealIp === undefined ? '' : unmapIPv4(xRealIp.trim());
    return real !== '' && familyOf(real) !== undefined ? real : peer;
  }
  let client = peer;
  let end = xff.length;
  while (end > 0) {
    const comma = xff.lastIndexOf(',', end - 1);
    const entry = unmapIPv4(xff.slice(comma + 1, end).trim());
    end = Math.max(comma, 0);
    if (familyOf(entry) === undefined) break;
    client = entry;
    if (!recursive || !isTrusted(trusted, entry)) break;
  }
  return client;
}

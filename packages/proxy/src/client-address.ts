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
  return forwardedClient(peer, trusted, recursive, xff, xRealIp);
}

/** realClientAddress for a peer already known to be trusted (the proxy checks each connection's peer once). */
export function forwardedClient(
  peer: string,
  trusted: BlockList | undefined,
  recursive: boolean,
  xff: string | undefined,
  xRealIp: string | undefined,
): string {
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

const kPeer = Symbol('tiergate.peer');

/** A client connection's TCP peer and whether the trusted ranges hold it. */
export interface PeerInfo {
  /** remoteAddress, IPv4-mapped form unmapped. */
  readonly address: string;
  readonly trusted: boolean;
  /** The list `trusted` was checked against (a reload brings a new one). */
  readonly checkedBy: BlockList | undefined;
}

/**
 * The peer of `socket`, worked out once per connection and kept on it (checked again when a reload changed the
 * trusted list), not on every request: a BlockList check costs about as much as routing (loadtest/README.md).
 */
export function peerOf(socket: object, trusted: BlockList | undefined): PeerInfo {
  const s = socket as { [kPeer]?: PeerInfo; remoteAddress?: string };
  const known = s[kPeer];
  if (known !== undefined && known.checkedBy === trusted) return known;
  const address = known?.address ?? unmapIPv4(s.remoteAddress ?? '');
  const info = { address, trusted: isTrusted(trusted, address), checkedBy: trusted };
  // An address not known yet (a socket already gone) is not kept: a later look may find it.
  if (address !== '') s[kPeer] = info;
  return info;
}

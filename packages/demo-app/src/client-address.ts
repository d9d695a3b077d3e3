import type { IncomingMessage } from 'node:http';
import { type BlockList, isIP } from 'node:net';
import { parseCidr, toBlockList } from '@tiergate/config';
import { TgError } from '@tiergate/errors';

/**
 * A set of CIDR ranges (`10.0.0.0/8`, `::1`, `192.0.2.7`); an address without a prefix is one host.
 * A malformed entry is TG_CONFIG_INVALID naming it (tiergate.yaml's schema rejects it earlier).
 */
export function parseTrustedProxies(cidrs: readonly string[]): BlockList {
  const bad = cidrs.find((cidr) => parseCidr(cidr) === undefined);
  if (bad !== undefined) throw new TgError('TG_CONFIG_INVALID', `trustedProxies: '${bad}' is not an IP address or CIDR range`);
  return toBlockList(cidrs);
}

/** `::ffff:192.0.2.1` (how a dual-stack socket shows an IPv4 peer) as `192.0.2.1`. */
function unmapped(address: string): string {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return match ? match[1]! : address;
}

/**
 * The client's address as this app should believe it: X-Real-IP when the TCP peer is a trusted
 * proxy (the tiergate proxy sets it), otherwise the TCP peer itself. Trusting the header from anyone
 * would let every client choose its own address (rate limits, audit logs).
 */
export function clientAddress(req: IncomingMessage, trusted: BlockList): string {
  const peer = unmapped(req.socket.remoteAddress ?? '');
  const family = isIP(peer);
  if (family === 0 || !trusted.check(peer, family === 6 ? 'ipv6' : 'ipv4')) return peer;
  const header = req.headers['x-real-ip'];
  const claimed = typeof header === 'string' ? unmapped(header.trim()) : '';
  return isIP(claimed) === 0 ? peer : claimed;
}

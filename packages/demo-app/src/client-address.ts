import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { TgError } from '@tiergate/errors';

/** A set of CIDR ranges (`10.0.0.0/8`, `::1`, `192.0.2.7`); an address without a prefix is one host. */
export function parseTrustedProxies(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', prefixText] = cidr.split('/');
    const family = isIP(address);
    const max = family === 6 ? 128 : 32;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
      throw new TgError('TG_CONFIG_INVALID', `trustedProxies: '${cidr}' is not an IP address or CIDR range`);
    }
    list.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
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

import { makeBalancer, newPeerTable } from './balancer-base.ts';
import { parseIpInto } from './ip-address.ts';
import { walkByWeight } from './peer-state.ts';
import { pickSmoothWeighted } from './smooth-weighted.ts';
import type { BalancerFactory } from './types.ts';

/** nginx ip_hash: hash = (hash * 113 + byte) % 6271 from 89, at most 20 rehashes, then round robin. */
const IP_HASH_INIT = 89;
const IP_HASH_MULT = 113;
const IP_HASH_MOD = 6271;
const MAX_TRIES = 20;
/** nginx hashes non-IP (unix socket) clients as the pseudo address 0.0.0. */
const PSEUDO = new Uint8Array(3);

/**
 * `ip_hash`, as ngx_http_upstream_ip_hash_module.c: IPv4 clients hash their first three octets
 * (all four with `ipHashWholeAddress`), IPv6 clients all 16 bytes; `hash % total_weight` walks the
 * primaries by static weight (down ones included, so a down server's clients move and the others
 * stay); an unusable pick rehashes by mixing the address in again, and after 20 failed tries the
 * pick falls back to smooth weighted round robin. Each pick recomputes from the initial hash (nginx
 * keeps the hash between retries of one request; with `tried` set the sequence is the same, only
 * the 20-try budget is counted afresh).
 */
export const createIpHash: BalancerFactory = (servers, options) => {
  const table = newPeerTable('ip_hash', servers);
  const ipv4Length = options.ipHashWholeAddress ? 4 : 3;
  const bytes = new Uint8Array(16);
  let lastAddress: string | undefined;
  let addrBytes: Uint8Array = PSEUDO;
  let addrLength = 3;

  const parse = (address: string) => {
    if (address === lastAddress) return;
    lastAddress = address;
    const n = parseIpInto(address, bytes);
    addrBytes = n === 0 ? PSEUDO : bytes;
    addrLength = n === 0 ? 3 : n === 4 ? ipv4Length : 16;
  };

  return makeBalancer('ip_hash', table, (tier, req, now) => {
    // Backups (rejected by config, as nginx does) and a single server go straight to round robin.
    if (tier !== table.primaries || table.single || tier.totalWeight === 0) return pickSmoothWeighted(table, tier, req, now);
    parse(req.clientAddress);
    let hash = IP_HASH_INIT;
    for (let tries = 0; tries <= MAX_TRIES; tries++) {
      for (let k = 0; k < addrLength; k++) hash = (hash * IP_HASH_MULT + addrBytes[k]!) % IP_HASH_MOD;
      const i = walkByWeight(table.servers, tier, hash % tier.totalWeight);
      if (table.usable(i, req, now)) return i;
    }
    return pickSmoothWeighted(table, tier, req, now);
  });
};

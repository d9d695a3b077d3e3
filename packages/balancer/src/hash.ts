import { crc32 } from 'node:zlib';
import { makeBalancer, newPeerTable } from './balancer-base.ts';
import { ConsistentHashRing } from './consistent-hash-ring.ts';
import { type PeerTable, type Tier, walkByWeight } from './peer-state.ts';
import { pickSmoothWeighted } from './smooth-weighted.ts';
import type { BalancerFactory, PickRequest } from './types.ts';

/** nginx gives up hashing after 20 unusable picks and falls back to round robin. */
const MAX_TRIES = 20;
/** crc32 of the decimal rehash counters nginx prefixes to the key on retries (precomputed: no allocation per pick). */
const REHASH_PREFIX_CRC = Array.from({ length: MAX_TRIES + 2 }, (_, n) => crc32(String(n)));

/**
 * Modulo hashing of ngx_http_upstream_get_hash_peer (Cache::Memcached compatible):
 * hash += (crc32([REHASH] KEY) >> 16) & 0x7fff, REHASH omitted the first time, then
 * `hash % total_weight` walks the primaries by static weight.
 */
function pickModulo(table: PeerTable, tier: Tier, req: PickRequest, now: number): number {
  const key = req.hashKey;
  let acc = 0;
  for (let rehash = 0; rehash <= MAX_TRIES; rehash++) {
    const crc = rehash === 0 ? crc32(key) : crc32(key, REHASH_PREFIX_CRC[rehash]!);
    acc += (crc >>> 16) & 0x7fff;
    const i = walkByWeight(table.servers, tier, acc % tier.totalWeight);
    if (table.usable(i, req, now)) return i;
  }
  return -1;
}

/**
 * Ring lookup of ngx_http_upstream_get_chash_peer: the first point >= crc32(key), then the
 * following points while their server is unusable, at most 20 steps.
 */
function pickRing(table: PeerTable, ring: ConsistentHashRing, req: PickRequest, now: number): number {
  if (ring.size === 0) return -1;
  const start = ring.find(crc32(req.hashKey));
  for (let tries = 0; tries <= MAX_TRIES; tries++) {
    const i = ring.ownerAt(start + tries);
    if (!table.usable(i, req, now)) continue;
    // nginx runs its weighted round robin over the peers sharing this server name; with one peer
    // per name that only lets effective_weight recover.
    table.currentWeight[i] = table.currentWeight[i]! - table.swrrAccumulate(i, now);
    return i;
  }
  return -1;
}

/**
 * `hash`: nginx `hash $key` (modulo) or `hash $key consistent` (ketama ring), selected by
 * `options.consistent`. As in nginx, an empty key, a single server, or 20 unusable tries fall back to
 * smooth weighted round robin; backups (rejected by config, as nginx does) are served by that
 * fallback too. Slow start does not apply to hashing (it would move keys).
 */
export const createHash: BalancerFactory = (servers, options) => {
  const table = newPeerTable('hash', servers);
  const ring = options.consistent ? ConsistentHashRing.build(servers, table.primaries.members) : undefined;
  return makeBalancer('hash', table, (tier, req, now) => {
    if (tier === table.primaries && req.hashKey !== '' && !table.single && tier.totalWeight > 0) {
      const i = ring ? pickRing(table, ring, req, now) : pickModulo(table, tier, req, now);
      if (i >= 0) return i;
    }
    return pickSmoothWeighted(table, tier, req, now);
  });
};

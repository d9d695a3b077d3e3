import { crc32 } from 'node:zlib';
import type { ServerSpec } from './types.ts';

/** nginx places 160 points on the ring per unit of weight (ngx_http_upstream_init_chash). */
export const POINTS_PER_WEIGHT = 160;

/**
 * Splits a server name the way ngx_http_upstream_init_chash does: `unix:` paths have no port;
 * otherwise the port is the run of digits after the last ':' (so `[::1]:80` → `[::1]`, `80`).
 */
export function splitHostPort(server: string): { host: string; port: string } {
  if (server.length >= 5 && server.slice(0, 5).toLowerCase() === 'unix:') return { host: server.slice(5), port: '' };
  for (let j = server.length - 1; j >= 0; j--) {
    const c = server.charCodeAt(j);
    if (c === 58) return { host: server.slice(0, j), port: server.slice(j + 1) };
    if (c < 48 || c > 57) break;
  }
  return { host: server, port: '' };
}

/**
 * The ketama ring of nginx `hash ... consistent` (Cache::Memcached::Fast compatible): for each
 * server, base = crc32(host "\0" port) and point j = crc32 continued over the previous point's 4
 * bytes, little endian (nginx on x86; big-endian nginx builds write the same byte order explicitly).
 * Points are sorted; equal hashes keep the first (nginx's qsort leaves the order of equal keys
 * unspecified; sorting ties by config order makes ours deterministic).
 */
export class ConsistentHashRing {
  readonly hashes: Uint32Array;
  readonly owners: Int32Array;

  private constructor(hashes: Uint32Array, owners: Int32Array) {
    this.hashes = hashes;
    this.owners = owners;
  }

  /** Builds the ring of the given server indices (their static weights set the point counts). */
  static build(servers: readonly ServerSpec[], members: ArrayLike<number>): ConsistentHashRing {
    const hashes: number[] = [];
    const owners: number[] = [];
    const prev = Buffer.alloc(4);
    for (let k = 0; k < members.length; k++) {
      const i = members[k]!;
      const { host, port } = splitHostPort(servers[i]!.address);
      const base = crc32(port, crc32('\0', crc32(host)));
      prev.writeUInt32LE(0);
      for (let j = 0; j < servers[i]!.weight * POINTS_PER_WEIGHT; j++) {
        const h = crc32(prev, base);
        hashes.push(h);
        owners.push(i);
        prev.writeUInt32LE(h);
      }
    }
    const order = hashes.map((_, k) => k).sort((a, b) => hashes[a]! - hashes[b]! || owners[a]! - owners[b]!);
    const outHashes: number[] = [];
    const outOwners: number[] = [];
    for (const k of order) {
      if (outHashes.length > 0 && outHashes[outHashes.length - 1] === hashes[k]) continue;
      outHashes.push(hashes[k]!);
      outOwners.push(owners[k]!);
    }
    return new ConsistentHashRing(Uint32Array.from(outHashes), Int32Array.from(outOwners));
  }

  get size(): number {
    return this.hashes.length;
  }

  /** Position of the first point >= hash (may equal `size`: callers wrap with `% size`). */
  find(hash: number): number {
    const points = this.hashes;
    let i = 0;
    let j = points.length;
    while (i < j) {
      const k = (i + j) >>> 1;
      if (hash > points[k]!) i = k + 1;
      else if (hash < points[k]!) j = k;
      else return k;
    }
    return i;
  }

  /** The server index owning the point at `position` (wrapping around the ring). */
  ownerAt(position: number): number {
    return this.owners[position % this.owners.length]!;
  }
}

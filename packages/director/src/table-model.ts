import { canonicalAddress, type IpvsDestination, type IpvsServiceEntry, type IpvsStats, serviceKey } from '@tiergate/ipvs';
import type { Op } from './plan.ts';

/**
 * The daemon's picture of the kernel's IPVS table: set from a full read, then kept up to date by mirroring every
 * op the kernel accepted (keepalived never re-reads the table at all; tiergate re-reads it at every resync, so
 * a change made behind its back lives here at most one `resync_interval`). Connection counters and stats are as
 * of the last read of their service. Keyed by `serviceKey`; foreign services are kept too (for status), and no op
 * ever names them.
 */
export class TableModel {
  readonly #entries = new Map<string, IpvsServiceEntry>();

  constructor(entries: readonly IpvsServiceEntry[] = []) {
    for (const e of entries) this.#entries.set(serviceKey(e.service), e);
  }

  get(key: string): IpvsServiceEntry | undefined {
    return this.#entries.get(key);
  }

  /** Replaces one service's destinations with a fresh read (their connection counters are current then). */
  setDestinations(key: string, destinations: IpvsDestination[]): void {
    const e = this.#entries.get(key);
    if (e) this.#entries.set(key, { service: e.service, destinations });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  entries(): IpvsServiceEntry[] {
    return [...this.#entries.values()];
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Mirrors ops the kernel accepted, in order. A full apply mirrors ~11,000 ops, and the planner gives every
   * destination op of one service the same service object: its key is derived once per run of such ops.
   */
  applyAll(ops: readonly Op[]): void {
    let service: Op['service'] | undefined;
    let key = '';
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as Op;
      if (op.service !== service) {
        service = op.service;
        key = serviceKey(service);
      }
      this.#applyAt(key, op);
    }
  }

  /** Mirrors one op the kernel accepted (or answered "already so"): the table now holds what the op asked for. */
  apply(op: Op): void {
    this.#applyAt(serviceKey(op.service), op);
  }

  #applyAt(key: string, op: Op): void {
    const e = this.#entries.get(key);
    switch (op.kind) {
      case 'add-service':
        if (!e) this.#entries.set(key, { service: op.service, destinations: [] });
        return;
      case 'update-service':
        if (e) this.#entries.set(key, { service: withStats(op.service, e.service.stats), destinations: e.destinations });
        return;
      case 'delete-service':
        this.#entries.delete(key);
        return;
    }
    if (!e) return;
    const i = indexOfDest(e.destinations, op.destination);
    const old = i === -1 ? undefined : e.destinations[i];
    if (op.kind === 'delete-destination') {
      if (i !== -1) e.destinations.splice(i, 1);
      return;
    }
    // A new destination starts with no connections; a changed one keeps its counters (the kernel does the same).
    const dest: IpvsDestination = {
      ...op.destination,
      activeConns: old?.activeConns ?? 0,
      inactConns: old?.inactConns ?? 0,
      persistConns: old?.persistConns ?? 0,
    };
    const kept = withStats(dest, old?.stats);
    if (i === -1) e.destinations.push(kept);
    else e.destinations[i] = kept;
  }
}

/**
 * Where `want` is in `dests` (`destKey` equality), without building a key per destination: the scan is per op,
 * so keys would make a full apply quadratic in strings. IPv4 literals are their own canonical form; only two
 * IPv6 literals (both have a colon) can be equal in a different spelling.
 */
function indexOfDest(dests: readonly IpvsDestination[], want: Pick<IpvsDestination, 'address' | 'port'>): number {
  const address = want.address;
  const port = want.port;
  const v6 = address.includes(':');
  const canonical = v6 ? canonicalAddress(address) : address;
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i] as IpvsDestination;
    if (d.port !== port) continue;
    if (d.address === address) return i;
    if (v6 && d.address.includes(':') && canonicalAddress(d.address) === canonical) return i;
  }
  return -1;
}

function withStats<T extends { stats?: IpvsStats }>(settings: T, stats: IpvsStats | undefined): T {
  return stats === undefined ? settings : { ...settings, stats };
}

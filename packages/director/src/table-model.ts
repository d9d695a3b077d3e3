import { destKey, type IpvsDestination, type IpvsServiceEntry, type IpvsStats, serviceKey } from '@tiergate/ipvs';
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

  /** Mirrors one op the kernel accepted (or answered "already so"): the table now holds what the op asked for. */
  apply(op: Op): void {
    const key = serviceKey(op.service);
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
    const dKey = destKey(op.destination);
    const i = e.destinations.findIndex((d) => destKey(d) === dKey);
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

function withStats<T extends { stats?: IpvsStats }>(settings: T, stats: IpvsStats | undefined): T {
  return stats === undefined ? settings : { ...settings, stats };
}

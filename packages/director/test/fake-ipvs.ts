import { TgError } from '@tiergate/errors';
import type { IpvsDriver, IpvsOpResult } from '@tiergate/ipvs';
import { destKey, type IpvsDestination, type IpvsService, type IpvsServiceEntry, type IpvsServiceId, serviceKey } from '@tiergate/ipvs';
import type { IpvsWriter } from '../src/apply.ts';
import type { Op } from '../src/plan.ts';

/**
 * An in-memory stand-in for the kernel's IPVS table, for the pure ordering and partial-failure logic of apply
 * (real-kernel behaviour is tested in the QEMU guest). It answers like ip_vs_ctl.c: EEXIST on duplicate adds,
 * ESRCH for a missing service, ENOENT for a missing destination.
 */
export class FakeIpvs implements IpvsWriter, Pick<IpvsDriver, 'listServices' | 'listDestinations'> {
  readonly table = new Map<string, IpvsServiceEntry>();
  readonly calls: string[] = [];
  /** The size of each applyBatch, in order. */
  readonly batches: number[] = [];
  /** Throw this error for the call whose log line matches. */
  failOn: { match: RegExp; error: Error } | undefined;

  constructor(initial: readonly IpvsServiceEntry[] = []) {
    for (const e of initial) this.table.set(serviceKey(e.service), structuredClone(e));
  }

  /** Like the kernel with a batch: every op is attempted, in order, whatever the ones before it answered. */
  async applyBatch(ops: readonly Op[]): Promise<IpvsOpResult[]> {
    this.batches.push(ops.length);
    const results: IpvsOpResult[] = [];
    for (const op of ops) {
      try {
        await this.#apply(op);
        results.push({ ok: true });
      } catch (error) {
        results.push({ ok: false, error });
      }
    }
    return results;
  }

  #apply(op: Op): Promise<void> {
    switch (op.kind) {
      case 'add-service':
        return this.addService(op.service);
      case 'update-service':
        return this.updateService(op.service);
      case 'delete-service':
        return this.deleteService(op.service);
      case 'add-destination':
        return this.addDestination(op.service, op.destination);
      case 'update-destination':
        return this.updateDestination(op.service, op.destination);
      case 'delete-destination':
        return this.deleteDestination(op.service, op.destination);
    }
  }

  async listServices(): Promise<IpvsServiceEntry[]> {
    return structuredClone([...this.table.values()]);
  }

  async listDestinations(id: IpvsServiceId): Promise<IpvsDestination[]> {
    this.#log(`listDestinations ${serviceKey(id)}`);
    return structuredClone(this.#svc(id).destinations);
  }

  #log(line: string): void {
    this.calls.push(line);
    if (this.failOn?.match.test(line)) throw this.failOn.error;
  }

  #svc(id: IpvsServiceId): IpvsServiceEntry {
    const e = this.table.get(serviceKey(id));
    if (!e) throw new TgError('TG_IPVS_NO_SERVICE', `no such service ${serviceKey(id)} (ESRCH)`);
    return e;
  }

  async addService(svc: IpvsService): Promise<void> {
    this.#log(`addService ${serviceKey(svc)}`);
    if (this.table.has(serviceKey(svc))) throw new TgError('TG_IPVS_EXISTS', 'exists (EEXIST)');
    this.table.set(serviceKey(svc), { service: structuredClone(svc), destinations: [] });
  }

  async updateService(svc: IpvsService): Promise<void> {
    this.#log(`updateService ${serviceKey(svc)}`);
    this.#svc(svc).service = structuredClone(svc);
  }

  async deleteService(id: IpvsServiceId): Promise<void> {
    this.#log(`deleteService ${serviceKey(id)}`);
    this.#svc(id);
    this.table.delete(serviceKey(id));
  }

  async addDestination(id: IpvsServiceId, dest: IpvsDestination): Promise<void> {
    this.#log(`addDestination ${serviceKey(id)} ${destKey(dest)} w=${dest.weight}`);
    const e = this.#svc(id);
    if (e.destinations.some((d) => destKey(d) === destKey(dest))) throw new TgError('TG_IPVS_EXISTS', 'exists (EEXIST)');
    e.destinations.push({ ...structuredClone(dest), activeConns: 0, inactConns: 0, persistConns: 0 });
  }

  async updateDestination(id: IpvsServiceId, dest: IpvsDestination): Promise<void> {
    this.#log(`updateDestination ${serviceKey(id)} ${destKey(dest)} w=${dest.weight}`);
    const e = this.#svc(id);
    const i = e.destinations.findIndex((d) => destKey(d) === destKey(dest));
    if (i === -1) throw new TgError('TG_IPVS_NOT_FOUND', 'no such destination (ENOENT)');
    const old = e.destinations[i] as IpvsDestination;
    e.destinations[i] = {
      ...structuredClone(dest),
      activeConns: old.activeConns,
      inactConns: old.inactConns,
      persistConns: old.persistConns,
    };
  }

  async deleteDestination(id: IpvsServiceId, dest: Pick<IpvsDestination, 'address' | 'port'>): Promise<void> {
    this.#log(`deleteDestination ${serviceKey(id)} ${destKey(dest)}`);
    const e = this.#svc(id);
    const i = e.destinations.findIndex((d) => destKey(d) === destKey(dest));
    if (i === -1) throw new TgError('TG_IPVS_NOT_FOUND', 'no such destination (ENOENT)');
    e.destinations.splice(i, 1);
  }
}

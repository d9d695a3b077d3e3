import {
  describeService,
  destKey,
  formatEndpoint,
  type IpvsDestination,
  type IpvsOp,
  type IpvsService,
  type IpvsServiceEntry,
  serviceIdOf,
  serviceKey,
} from '@tiergate/ipvs';

/**
 * One kernel write the planner emits: the service and destination subset of @tiergate/ipvs's `IpvsOp`, so a
 * dry run prints it with `formatIpvsadmCommand` and any driver executes it.
 */
export type Op = Extract<
  IpvsOp,
  { kind: 'add-service' | 'update-service' | 'delete-service' | 'add-destination' | 'update-destination' | 'delete-destination' }
>;

export type OpKind = Op['kind'];

/**
 * The safe order: new capacity first (services, then their real servers), then changes, then removals, and a
 * service only after its destinations. A crash between two ops then never leaves a service with fewer
 * servers than both the old and the new config give it.
 */
export const OP_ORDER: readonly OpKind[] = [
  'add-service',
  'update-service',
  'add-destination',
  'update-destination',
  'delete-destination',
  'delete-service',
];

/** Sorts ops into OP_ORDER, keeping the relative order of ops of one kind (one pass: a full apply has ~11,000). */
export function orderOps(ops: readonly Op[]): Op[] {
  const byKind = new Map<OpKind, Op[]>(OP_ORDER.map((k) => [k, []]));
  for (const op of ops) (byKind.get(op.kind) as Op[]).push(op);
  return OP_ORDER.flatMap((k) => byKind.get(k) as Op[]);
}

/** A one-line human description: `add-destination TCP 10.0.0.100:80 -> 10.0.0.11:80 route w=5`. */
export function describeOp(op: Op): string {
  const svc = describeService(op.service);
  if (!('destination' in op)) return `${op.kind} ${svc}${op.kind === 'delete-service' ? '' : ` ${(op.service as IpvsService).scheduler}`}`;
  const d = op.destination;
  const rest = op.kind === 'delete-destination' ? '' : ` ${op.destination.forward} w=${op.destination.weight}`;
  return `${op.kind} ${svc} -> ${formatEndpoint(d.address, d.port)}${rest}`;
}

/** Whether two services differ in a field the kernel lets us set (identity is equal by construction). */
export function serviceSettingsDiffer(want: IpvsService, have: IpvsService): boolean {
  return (
    want.scheduler !== have.scheduler ||
    want.flags.persistent !== have.flags.persistent ||
    want.flags.onePacket !== have.flags.onePacket ||
    want.flags.schedFlags.join(',') !== have.flags.schedFlags.join(',') ||
    want.timeout !== have.timeout ||
    String(want.netmask) !== String(have.netmask) ||
    (want.peName ?? '') !== (have.peName ?? '')
  );
}

/**
 * Whether a destination needs SET_DEST. Reply-only fields (connection counts, stats) are ignored. The kernel
 * reports a destination whose address is local to the director as `local` whatever we asked for, so `local`
 * matches any method (else every cycle would rewrite it). Tunnel settings matter only for tunnel destinations;
 * kernels older than 5.2 report none, which is what ipip/0/nocsum means.
 */
export function destSettingsDiffer(want: IpvsDestination, have: IpvsDestination): boolean {
  if (have.forward !== 'local' && want.forward !== have.forward) return true;
  if (want.weight !== have.weight || want.upperThreshold !== have.upperThreshold || want.lowerThreshold !== have.lowerThreshold)
    return true;
  if (want.forward !== 'tunnel') return false;
  const a = want.tunnel ?? { type: 'ipip', port: 0, checksum: 'nocsum' };
  const b = have.tunnel ?? { type: 'ipip', port: 0, checksum: 'nocsum' };
  return a.type !== b.type || a.port !== b.port || a.checksum !== b.checksum;
}

/**
 * The ops that turn `actual` into `desired`, in OP_ORDER. Pure.
 * - Only services in `desired` or in `owned` (keys, `serviceKey`) are touched: a service someone else created
 *   in the same table is never modified or deleted, and there is no FLUSH.
 * - An owned service that is no longer desired is deleted (with its destinations, in one op).
 * - Updates are issued only when a settable field differs; identity changes are a delete plus an add because
 *   the keys differ.
 * Invariant (property-tested): `plan(d, applyOps(a, plan(d, a, o)), o)` is empty.
 */
export function plan(desired: readonly IpvsServiceEntry[], actual: readonly IpvsServiceEntry[], owned: ReadonlySet<string>): Op[] {
  const have = new Map<string, IpvsServiceEntry>();
  for (let i = 0; i < actual.length; i++) {
    const e = actual[i] as IpvsServiceEntry;
    have.set(serviceKey(e.service), e);
  }
  const wanted = new Set<string>();
  // One list per kind, in OP_ORDER: the result needs no sort (a full apply plans ~11,000 ops).
  const out = new OpLists();
  for (let i = 0; i < desired.length; i++) {
    const want = desired[i] as IpvsServiceEntry;
    const key = serviceKey(want.service);
    wanted.add(key);
    const cur = have.get(key);
    if (!cur) {
      out.addService.push({ kind: 'add-service', service: want.service });
      const service = serviceIdOf(want.service);
      const dests = want.destinations;
      for (let d = 0; d < dests.length; d++)
        out.addDestination.push({ kind: 'add-destination', service, destination: dests[d] as IpvsDestination });
      continue;
    }
    if (serviceSettingsDiffer(want.service, cur.service)) out.updateService.push({ kind: 'update-service', service: want.service });
    planDestinations(want, cur, out);
  }
  for (const [key, cur] of have) {
    if (!wanted.has(key) && owned.has(key)) out.deleteService.push({ kind: 'delete-service', service: serviceIdOf(cur.service) });
  }
  return out.ordered();
}

/** Planned ops by kind; `ordered()` concatenates them in OP_ORDER. */
class OpLists {
  readonly addService: Op[] = [];
  readonly updateService: Op[] = [];
  readonly addDestination: Op[] = [];
  readonly updateDestination: Op[] = [];
  readonly deleteDestination: Op[] = [];
  readonly deleteService: Op[] = [];

  ordered(): Op[] {
    return this.addService.concat(
      this.updateService,
      this.addDestination,
      this.updateDestination,
      this.deleteDestination,
      this.deleteService,
    );
  }
}

function planDestinations(want: IpvsServiceEntry, cur: IpvsServiceEntry, out: OpLists): void {
  const service = serviceIdOf(want.service);
  const haveDests = new Map(cur.destinations.map((d) => [destKey(d), d]));
  const seen = new Set<string>();
  for (const dest of want.destinations) {
    const key = destKey(dest);
    seen.add(key);
    const h = haveDests.get(key);
    if (!h) out.addDestination.push({ kind: 'add-destination', service, destination: dest });
    else if (destSettingsDiffer(dest, h)) out.updateDestination.push({ kind: 'update-destination', service, destination: dest });
  }
  for (const [key, h] of haveDests) if (!seen.has(key)) out.deleteDestination.push({ kind: 'delete-destination', service, destination: h });
}

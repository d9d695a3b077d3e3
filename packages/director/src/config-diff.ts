import { serviceKey } from '@tiergate/ipvs';
import { serviceIdOfConfig, type VirtualService } from './desired.ts';

const indexes = new WeakMap<readonly VirtualService[], ReadonlyMap<string, VirtualService>>();

/** The configured virtual services by service key, computed once per services array. */
export function servicesByKey(services: readonly VirtualService[]): ReadonlyMap<string, VirtualService> {
  let byKey = indexes.get(services);
  if (!byKey) {
    byKey = new Map(services.map((vs) => [keyOf(vs), vs]));
    indexes.set(services, byKey);
  }
  return byKey;
}

function keyOf(vs: VirtualService): string {
  return serviceKey(serviceIdOfConfig(vs));
}

/**
 * What a reload changes: the service keys a new config adds, removes, or whose settings (of the service or of
 * any of its real servers) differ, and the new config's index. A reload's cost outside the kernel is this
 * comparison, linear in the size of the config; a file usually keeps its services in order, so a service equal
 * to the one at the same position keeps that one's key, and only changed services have their key derived.
 * Throws TG_CONFIG_INVALID on a service without an identity.
 */
export function diffServices(
  before: readonly VirtualService[],
  after: readonly VirtualService[],
): { byKey: ReadonlyMap<string, VirtualService>; changed: Set<string> } {
  const old = servicesByKey(before);
  // Keys by position hold only when `before` has no duplicate key (then its index has one entry per service).
  const oldKeys = old.size === before.length ? [...old.keys()] : [];
  const byKey = new Map<string, VirtualService>();
  const changed = new Set<string>();
  for (let i = 0; i < after.length; i++) {
    const vs = after[i] as VirtualService;
    if (i < oldKeys.length && sameService(before[i] as VirtualService, vs)) {
      byKey.set(oldKeys[i] as string, vs);
      continue;
    }
    const key = keyOf(vs);
    byKey.set(key, vs);
    const prev = old.get(key);
    if (prev === undefined || !sameService(prev, vs)) changed.add(key);
  }
  for (let i = 0; i < oldKeys.length; i++) if (!byKey.has(oldKeys[i] as string)) changed.add(oldKeys[i] as string);
  if (oldKeys.length === 0) for (const key of old.keys()) if (!byKey.has(key)) changed.add(key);
  indexes.set(after, byKey);
  return { byKey, changed };
}

/**
 * Whether two configured virtual services are equal. A reload compares every real server of the file (ten times
 * as many objects as services), so real servers are compared field by field, which V8 keeps monomorphic, and
 * the rest of the service with sameData. The fields are the schema's (`realServer` in @tiergate/config); the test
 * changes each field the schema has and expects a difference, so a new one cannot be missed here.
 */
export function sameService(a: VirtualService, b: VirtualService): boolean {
  if (a === b) return true;
  const ra = a.real_servers;
  const rb = b.real_servers;
  if (ra.length !== rb.length) return false;
  // One loop, no call per real server: a reload runs this cold (interpreted) over every real server of the file.
  for (let i = 0; i < ra.length; i++) {
    const x = ra[i] as RealServer;
    const y = rb[i] as RealServer;
    if (
      x !== y &&
      (x.address !== y.address ||
        x.port !== y.port ||
        x.weight !== y.weight ||
        x.upper_threshold !== y.upper_threshold ||
        x.lower_threshold !== y.lower_threshold)
    )
      return false;
  }
  let keys = 0;
  for (const k in a) {
    keys += 1;
    if (k === 'real_servers') continue;
    const u = a[k as keyof VirtualService];
    const v = b[k as keyof VirtualService];
    if (u === v ? u === undefined && !Object.hasOwn(b, k) : !sameData(u, v)) return false;
  }
  for (const _ in b) keys -= 1;
  return keys === 0;
}

type RealServer = VirtualService['real_servers'][number];

/**
 * Deep equality of plain config data (objects, arrays, primitives), stopping at the first difference. Hot on a
 * reload (every setting of every real server): no key arrays are allocated, primitives compare inline.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !sameData(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let keys = 0;
  for (const k in x) {
    keys += 1;
    const u = x[k];
    const v = y[k];
    if (u === v ? u === undefined && !Object.hasOwn(y, k) : !sameData(u, v)) return false;
  }
  for (const _ in y) keys -= 1;
  return keys === 0;
}

import { virtualServiceSourceText } from '@tiergate/config';
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
 * Whether two configured virtual services are equal. A reload compares every service and real server of the file,
 * the first time with V8 not having optimized this code yet: so each field is compared on its own, with nothing
 * called for a field that is equal (no loop over keys), and real servers in one loop. The fields are the schema's
 * (`virtualService` and `realServer` in @tiergate/config); the tests change each field the schema has and
 * expect a difference, so a new one cannot be missed here. Nested settings (persistence, tunnel, the check,
 * the sorry server) compare with sameData when not the same object.
 */
export function sameService(a: VirtualService, b: VirtualService): boolean {
  if (a === b) return true;
  // Both read from a file with the same text: equal, without looking at a field (parseConfig records the text).
  const text = virtualServiceSourceText(a);
  if (text !== undefined && text === virtualServiceSourceText(b)) return true;
  return sameRealServers(a.real_servers, b.real_servers) && sameSettings(a, b);
}

function sameRealServers(ra: readonly RealServer[], rb: readonly RealServer[]): boolean {
  if (ra.length !== rb.length) return false;
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
  return true;
}

/** The service's own settings (all but its real servers). */
function sameSettings(a: VirtualService, b: VirtualService): boolean {
  return (
    a.address === b.address &&
    a.port === b.port &&
    a.protocol === b.protocol &&
    a.fwmark === b.fwmark &&
    a.family === b.family &&
    a.name === b.name &&
    a.scheduler === b.scheduler &&
    a.one_packet === b.one_packet &&
    a.forwarding === b.forwarding &&
    a.drain_timeout === b.drain_timeout &&
    sameFlags(a.scheduler_flags, b.scheduler_flags) &&
    (a.persistence === b.persistence || sameData(a.persistence, b.persistence)) &&
    (a.tunnel === b.tunnel || sameData(a.tunnel, b.tunnel)) &&
    (a.health_check === b.health_check || sameData(a.health_check, b.health_check)) &&
    (a.sorry_server === b.sorry_server || sameData(a.sorry_server, b.sorry_server))
  );
}

function sameFlags(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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

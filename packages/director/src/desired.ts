import { isIP } from 'node:net';
import { type DeepReadonly, splitHostPort, type VirtualServiceConfig } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import {
  defaultNetmask,
  destKey,
  familyOfAddress,
  type IpvsDestination,
  type IpvsFamily,
  type IpvsForward,
  type IpvsSchedFlag,
  type IpvsService,
  type IpvsServiceEntry,
  type IpvsServiceId,
  serviceKey,
} from '@tiergate/ipvs';

/** A virtual service as the config holds it (frozen, deeply readonly). */
export type VirtualService = DeepReadonly<VirtualServiceConfig>;

/**
 * Health of real servers, keyed by `healthKey(serviceKey, destKey)`. A missing key means "healthy":
 * services without a health check, and servers not yet checked (keepalived and HAProxy start servers up).
 */
export type HealthSnapshot = ReadonlyMap<string, boolean>;

/** The key of one real server of one service in a HealthSnapshot. */
export function healthKey(svcKey: string, dstKey: string): string {
  return `${svcKey} ${dstKey}`;
}

const FORWARD: Record<VirtualServiceConfig['forwarding'], IpvsForward> = { dr: 'route', nat: 'masq', tun: 'tunnel' };
/** Kernel bit order (SCHED1, SCHED2): `*-fallback` is SCHED1, `*-port` SCHED2. The model wants them sorted by bit. */
const FLAG_ORDER: readonly IpvsSchedFlag[] = ['sh-fallback', 'mh-fallback', 'flag-1', 'sh-port', 'mh-port', 'flag-2', 'flag-3'];

/** The kernel identity of a configured virtual service. */
export function serviceIdOfConfig(vs: VirtualService): IpvsServiceId {
  if (vs.fwmark !== undefined) return { family: vs.family ?? 'inet', fwmark: vs.fwmark };
  if (vs.address === undefined || vs.port === undefined)
    throw new TgError('TG_CONFIG_INVALID', `virtual service ${vs.name ?? '?'}: needs address and port, or fwmark`);
  return { family: familyOfAddress(vs.address), protocol: vs.protocol, address: vs.address, port: vs.port };
}

/** `10.0.0.100:80`, `[2001:db8::1]:80` → the endpoint part of a service key; undefined for anything else. */
export function endpointOf(spec: string): string | undefined {
  const hp = splitHostPort(spec);
  return hp && isIP(hp.host) !== 0 ? destKey({ address: hp.host, port: hp.port }) : undefined;
}

/**
 * A real server as an operator types it (`director drain`, `director wait`): `ADDR` (any port) or `ADDR:PORT` (the
 * port the kernel holds), compared in the kernel's canonical spelling (IPv6 has many; destKey's is the one).
 * `endpoint` is set for ADDR:PORT, `address` (destKey with port 0) for ADDR; undefined when it is neither.
 */
export function serverSpec(spec: string): { endpoint?: string; address?: string } | undefined {
  const bare = spec.replace(/^\[|\]$/g, '');
  if (isIP(bare) !== 0) return { address: destKey({ address: bare, port: 0 }) };
  const endpoint = endpointOf(spec);
  return endpoint === undefined ? undefined : { endpoint };
}

/** Whether the real server `rs` of `vs` (kernel key `dstKey`) is the one `spec` (serverSpec) names. */
export function isServer(spec: { endpoint?: string; address?: string }, dstKey: string, rsAddress: string): boolean {
  return dstKey === spec.endpoint || destKey({ address: rsAddress, port: 0 }) === spec.address;
}

/**
 * The port a real server has in the kernel. DR and TUN cannot translate ports, so their destinations take the
 * service's port; for a fwmark service it is 0 (the kernel's sync code looks non-NAT fwmark dests up with port 0).
 */
export function destPortOf(vs: VirtualService, rsPort: number | undefined): number {
  if (vs.fwmark !== undefined) return vs.forwarding === 'nat' ? (rsPort ?? 0) : 0;
  return vs.forwarding === 'nat' ? (rsPort ?? vs.port ?? 0) : (vs.port ?? 0);
}

/** Service settings from config. Durations in config are ms; the kernel's persistence timeout is whole seconds (rounded up, ≥ 1). */
export function serviceOfConfig(vs: VirtualService): IpvsService {
  const id = serviceIdOfConfig(vs);
  const persistence = vs.persistence;
  const schedFlags = [...vs.scheduler_flags].sort((a, b) => FLAG_ORDER.indexOf(a) - FLAG_ORDER.indexOf(b));
  return {
    ...id,
    scheduler: vs.scheduler,
    flags: { persistent: persistence !== undefined, onePacket: vs.one_packet, schedFlags },
    timeout: persistence ? Math.max(1, Math.ceil(persistence.timeout / 1000)) : 0,
    netmask: persistence?.netmask ?? defaultNetmask(id.family),
  } as IpvsService;
}

function destination(
  vs: VirtualService,
  address: string,
  port: number | undefined,
  weight: number,
  upperThreshold: number,
  lowerThreshold: number,
): IpvsDestination {
  const forward = FORWARD[vs.forwarding];
  const dest: IpvsDestination = {
    address,
    port: destPortOf(vs, port),
    family: familyOfAddress(address) as IpvsFamily,
    forward,
    weight,
    upperThreshold,
    lowerThreshold,
  };
  if (forward === 'tunnel') {
    const t = vs.tunnel;
    dest.tunnel = { type: t?.type ?? 'ipip', port: t?.port ?? 0, checksum: t?.checksum ?? 'nocsum' };
  }
  return dest;
}

/** Real servers an operator drained by hand (manual-drain.ts), by healthKey: weight 0, or absent. */
export type HeldModes = ReadonlyMap<string, { readonly phase: string }>;

/**
 * What the kernel should hold for these virtual services given the health of their real servers:
 * a healthy server at its configured weight; an unhealthy one at weight 0 (`on_failure: quiesce`, existing
 * connections continue) or absent (`remove`); a server drained by hand (`held`) at weight 0, or absent once its
 * phase is `removed`, whatever its health; the sorry server (weight 1) only while no real server is healthy and
 * not held. Pure.
 */
export function desiredEntries(services: readonly VirtualService[], health: HealthSnapshot, held?: HeldModes): IpvsServiceEntry[] {
  const checked = servicesIn(health);
  const anyHeld = held !== undefined && held.size > 0;
  const out: IpvsServiceEntry[] = [];
  for (let s = 0; s < services.length; s++) {
    const vs = services[s] as VirtualService;
    const service = serviceOfConfig(vs);
    const key = serviceKey(service);
    // A service with no server in the snapshot is all healthy: no health key is built for its servers.
    const known = checked.has(key);
    const destinations: IpvsDestination[] = [];
    let healthyCount = 0;
    const servers = vs.real_servers;
    for (let r = 0; r < servers.length; r++) {
      const rs = servers[r] as VirtualService['real_servers'][number];
      const dest = destination(vs, rs.address, rs.port, rs.weight, rs.upper_threshold, rs.lower_threshold);
      const healthy = !known || (health.get(healthKey(key, destKey(dest))) ?? true);
      // Hot with thousands of real servers: a health key is built here only while some server is held.
      const hold = anyHeld ? held.get(healthKey(key, destKey(dest))) : undefined;
      if (hold?.phase === 'removed') continue;
      if (healthy && !hold) healthyCount += 1;
      if (!healthy && vs.health_check?.on_failure === 'remove') continue;
      destinations.push(healthy && !hold ? dest : { ...dest, weight: 0 });
    }
    const sorry = vs.sorry_server;
    if (sorry && healthyCount === 0) {
      const dest = destination(vs, sorry.address, sorry.port, 1, 0, 0);
      // A sorry server that is also a real server of this service is already present (at weight 0).
      const existing = destinations.findIndex((d) => destKey(d) === destKey(dest));
      if (existing === -1) destinations.push(dest);
      else destinations[existing] = dest;
    }
    out.push({ service, destinations });
  }
  return out;
}

/** The service keys a health snapshot has servers of (the part of a healthKey before its space). */
function servicesIn(health: HealthSnapshot): Set<string> {
  const keys = new Set<string>();
  for (const hk of health.keys()) keys.add(hk.slice(0, hk.indexOf(' ')));
  return keys;
}

/** healthKeys of every real server and sorry server in config (see `withDraining`). Pure. */
export function configuredKeys(services: readonly VirtualService[]): Set<string> {
  const keys = new Set<string>();
  for (const vs of services) {
    const svcKey = serviceKey(serviceIdOfConfig(vs));
    const servers = [...vs.real_servers, ...(vs.sorry_server ? [vs.sorry_server] : [])];
    for (const rs of servers) keys.add(healthKey(svcKey, destKey({ address: rs.address, port: destPortOf(vs, rs.port) })));
  }
  return keys;
}

/** Service keys (`serviceKey`) of the configured virtual services. Pure. */
export function configuredServiceKeys(services: readonly VirtualService[]): Set<string> {
  return new Set(services.map((vs) => serviceKey(serviceIdOfConfig(vs))));
}

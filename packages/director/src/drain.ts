import { destKey, type IpvsDestination, type IpvsServiceEntry, serviceKey } from '@tiergate/ipvs';
import { healthKey } from './desired.ts';

/** When each draining real server started draining (ms, from the injected clock), keyed by `healthKey`. */
export type DrainTimes = ReadonlyMap<string, number>;

export interface DrainInput {
  /** `desiredEntries(...)`: what config and health want. */
  readonly desired: readonly IpvsServiceEntry[];
  /** What the kernel holds now. */
  readonly actual: readonly IpvsServiceEntry[];
  /** healthKeys of every real server and sorry server in config: their absence is deliberate, never a drain. */
  readonly configured: Pick<ReadonlySet<string>, 'has'>;
  /** The previous cycle's drain times. */
  readonly draining: DrainTimes;
  readonly now: number;
  /** The service's `drain_timeout` in ms. */
  readonly drainTimeout: (svcKey: string) => number;
}

export interface DrainResult {
  /** `desired` plus the draining real servers at weight 0. */
  readonly desired: IpvsServiceEntry[];
  /** Drain times to keep for the next cycle. */
  readonly draining: Map<string, number>;
}

/**
 * Graceful removal (kube-proxy's graceful termination, keepalived's inhibit): a real server that left the config
 * of a service that stays is first kept at weight 0, so established connections finish, and deleted once it
 * has no active connection or its service's drain_timeout has passed. Servers removed for failing a health
 * check (`on_failure: remove`) or a sorry server no longer needed are deleted at once. Pure; the clock is `now`.
 */
export function withDraining(input: DrainInput): DrainResult {
  const have = new Map(input.actual.map((e) => [serviceKey(e.service), e]));
  const draining = new Map<string, number>();
  const desired = input.desired.map((want) => {
    const svcKey = serviceKey(want.service);
    const cur = have.get(svcKey);
    if (!cur) return want;
    const wanted = new Set(want.destinations.map(destKey));
    const kept: IpvsDestination[] = [];
    for (const dest of cur.destinations) {
      // Hot with thousands of real servers: one key per destination, the health key only for unwanted ones.
      const dKey = destKey(dest);
      if (wanted.has(dKey)) continue;
      const key = healthKey(svcKey, dKey);
      if (input.configured.has(key)) continue;
      const since = input.draining.get(key) ?? input.now;
      const drained = (dest.activeConns ?? 0) === 0 || input.now - since >= input.drainTimeout(svcKey);
      if (drained) continue;
      draining.set(key, since);
      kept.push({ ...settingsOf(dest), weight: 0 });
    }
    return kept.length === 0 ? want : { service: want.service, destinations: [...want.destinations, ...kept] };
  });
  return { desired, draining };
}

/** A destination without its reply-only fields. */
export function settingsOf(d: IpvsDestination): IpvsDestination {
  const out: IpvsDestination = {
    address: d.address,
    port: d.port,
    family: d.family,
    forward: d.forward,
    weight: d.weight,
    upperThreshold: d.upperThreshold,
    lowerThreshold: d.lowerThreshold,
  };
  if (d.tunnel) out.tunnel = { ...d.tunnel };
  return out;
}

import { TgError } from '@tiergate/errors';
import { destKey, serviceKey } from '@tiergate/ipvs';
import { destPortOf, endpointOf, healthKey, isServer, serverSpec, serviceIdOfConfig, type VirtualService } from './desired.ts';

/**
 * Where a real server drained by hand (`tiergate director drain`, POST /drain) is: `draining` at weight 0 until
 * its active connections reach 0 or the timeout passes, then `drained` (still weight 0: `--then keep`) or
 * `removed` (deleted from the service: `--then remove`). It stays so across cycles, reloads and director restarts
 * (the state file) until undrained. keepalived has no such command; this is `ipvsadm -e -w 0`, then `ipvsadm -d`,
 * with the daemon holding the result instead of undoing it at its next check.
 */
export type HeldPhase = 'draining' | 'drained' | 'removed';

export interface HeldServer {
  /** When the drain began (ms, the daemon's clock). */
  readonly since: number;
  readonly timeoutMs: number;
  readonly after: 'remove' | 'keep';
  readonly phase: HeldPhase;
}

/** Real servers held by hand, by `healthKey`. */
export type HeldServers = ReadonlyMap<string, HeldServer>;

/** What the planner does with a held server: weight 0, or absent. */
export function heldMode(h: HeldServer): 'quiesce' | 'remove' {
  return h.phase === 'removed' ? 'remove' : 'quiesce';
}

/** One configured real server of one configured virtual service. */
export interface ResolvedServer {
  readonly service: VirtualService;
  readonly svcKey: string;
  readonly dstKey: string;
  /** `healthKey(svcKey, dstKey)`. */
  readonly key: string;
}

/**
 * Finds a configured real server from what an operator types: the service as its `name`, `VIP:PORT` (any protocol;
 * `udp/VIP:PORT` when several share it), or a service key (`fwmark/inet/7`); the server as `ADDR` or `ADDR:PORT`
 * (the port the kernel holds: the service's in DR and TUN). Throws TG_DIRECTOR_UNKNOWN_SERVER naming what exists.
 */
export function resolveServer(services: readonly VirtualService[], service: string, server: string): ResolvedServer {
  const ep = endpointOf(service);
  const matches = services.filter((vs) => {
    const key = serviceKey(serviceIdOfConfig(vs));
    return vs.name === service || key === service || (ep !== undefined && key.slice(key.indexOf('/') + 1) === ep);
  });
  const known = services.map((vs) => vs.name ?? serviceKey(serviceIdOfConfig(vs))).join(', ') || 'none';
  if (matches.length === 0) throw new TgError('TG_DIRECTOR_UNKNOWN_SERVER', `no virtual service '${service}' (services: ${known})`);
  if (matches.length > 1) {
    const keys = matches.map((vs) => serviceKey(serviceIdOfConfig(vs))).join(', ');
    throw new TgError('TG_DIRECTOR_UNKNOWN_SERVER', `'${service}' names several virtual services: use one of ${keys}`);
  }
  const vs = matches[0] as VirtualService;
  const svcKey = serviceKey(serviceIdOfConfig(vs));
  const wanted = serverSpec(server);
  const candidates = vs.real_servers.map((rs) => ({
    dstKey: destKey({ address: rs.address, port: destPortOf(vs, rs.port) }),
    address: rs.address,
  }));
  const found = candidates.filter((c) => wanted !== undefined && isServer(wanted, c.dstKey, c.address)).map((c) => c.dstKey);
  if (found.length !== 1) {
    const why = found.length === 0 ? `has no real server '${server}'` : `has several real servers at '${server}': add the port`;
    const list = candidates.map((c) => c.dstKey).join(', ') || 'none';
    throw new TgError('TG_DIRECTOR_UNKNOWN_SERVER', `virtual service ${svcKey} ${why} (real servers: ${list})`);
  }
  const dstKey = found[0] as string;
  return { service: vs, svcKey, dstKey, key: healthKey(svcKey, dstKey) };
}

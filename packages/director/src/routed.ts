// Also the package's `@tiergate/director/routed` entry: `tiergate director wait` reads a daemon's status with this
// alone, without loading the daemon, its drivers, metrics and telemetry (the index does).
import { TgError } from '@tiergate/errors';
import { destKey, serviceKey } from '@tiergate/ipvs';
import { destPortOf, isServer, serverSpec, serviceIdOfConfig, type VirtualService } from './desired.ts';
import type { DirectorStatus } from './reconciler.ts';

export type { DirectorStatus } from './reconciler.ts';

/**
 * Where one real server stands in one virtual service that lists it, as the daemon's GET /status shows it:
 * - `routed`: in the table at a weight above 0 and not failing its check: new connections can reach it;
 * - `held`: drained by hand (`director drain`): it stays out until undrained, so nothing to wait for;
 * - `off`: weight 0 in the file itself: never routed, nothing to wait for;
 * - `down`: its health check fails (at weight 0 with `on_failure: quiesce`);
 * - `quiesced`: at weight 0 while not failing (a check that has not yet passed `rise` times, or a drain);
 * - `absent`: not in the kernel's table (`on_failure: remove` while down, or a table not yet applied).
 */
export type RouteState = 'routed' | 'held' | 'off' | 'down' | 'quiesced' | 'absent';

export interface RouteOfServer {
  /** The service's key (`tcp/10.0.0.100:80`). */
  readonly service: string;
  /** The real server as the kernel holds it (`10.0.0.11:80`). */
  readonly server: string;
  readonly state: RouteState;
  /** Its weight in the kernel's table; null when absent. */
  readonly weight: number | null;
}

/** The states a rolling restart need not wait for. */
export function isSettled(r: RouteOfServer): boolean {
  return r.state === 'routed' || r.state === 'held' || r.state === 'off';
}

/**
 * Where SERVER (`ADDR`, or `ADDR:PORT` as the kernel holds it) stands in every configured virtual service that
 * lists it, read from a status of the daemon. Throws TG_DIRECTOR_UNKNOWN_SERVER when no service lists it, naming
 * the real servers there are (a typo must not wait for nothing and pass).
 */
export function routesOf(services: readonly VirtualService[], status: DirectorStatus, server: string): RouteOfServer[] {
  const wanted = serverSpec(server);
  if (wanted === undefined) throw new TgError('TG_CLI_USAGE', `--server: expected ADDR or ADDR:PORT, not '${server}'`);
  const byKey = new Map(status.services.map((s) => [s.key, s]));
  const held = new Set((status.held ?? []).map((h) => `${h.service} ${h.server}`));
  const out: RouteOfServer[] = [];
  const all: string[] = [];
  for (const vs of services) {
    const svcKey = serviceKey(serviceIdOfConfig(vs));
    for (const rs of vs.real_servers) {
      const dst = destKey({ address: rs.address, port: destPortOf(vs, rs.port) });
      all.push(dst);
      if (!isServer(wanted, dst, rs.address)) continue;
      const d = byKey.get(svcKey)?.destinations.find((x) => x.server === dst);
      const state: RouteState = held.has(`${svcKey} ${dst}`)
        ? 'held'
        : rs.weight === 0
          ? 'off'
          : d === undefined
            ? 'absent'
            : d.healthy === false
              ? 'down'
              : d.weight === 0
                ? 'quiesced'
                : 'routed';
      out.push({ service: svcKey, server: dst, state, weight: d?.weight ?? null });
    }
  }
  if (out.length === 0)
    throw new TgError(
      'TG_DIRECTOR_UNKNOWN_SERVER',
      `no virtual service has a real server '${server}' (real servers: ${[...new Set(all)].join(', ') || 'none'})`,
    );
  return out;
}

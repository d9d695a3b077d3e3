import { TgError } from '@tiergate/errors';
import { PeerTable, type Tier } from './peer-state.ts';
import type { AlgorithmName, AttemptOutcome, Balancer, PickRequest, ServerSpec, ServerState } from './types.ts';

/**
 * Chooses one server of a tier for an attempt, or -1. It must only return indices for which
 * `table.usable(i, req, now)` holds, and must not count the attempt (the base does).
 */
export type TierSelector = (tier: Tier, req: PickRequest, now: number) => number;

/** Rejects server lists that no config could have produced (the config schema checks them first). */
export function validateServers(algorithm: AlgorithmName, servers: readonly ServerSpec[]): void {
  const seen = new Set<string>();
  servers.forEach((s, i) => {
    const bad = (what: string) =>
      new TgError('TG_CONFIG_INVALID', `balancer ${algorithm}: server ${i} (${s.address}): ${what}`, {
        details: { index: i, address: s.address },
      });
    if (seen.has(s.address)) throw bad('duplicate address');
    seen.add(s.address);
    if (!Number.isInteger(s.weight) || s.weight < 1) throw bad('weight must be an integer >= 1');
    if (!Number.isInteger(s.maxFails) || s.maxFails < 0) throw bad('max_fails must be an integer >= 0');
    if (!Number.isInteger(s.maxConns) || s.maxConns < 0) throw bad('max_conns must be an integer >= 0');
    if (!(s.failTimeoutMs >= 0) || !(s.slowStartMs >= 0)) throw bad('fail_timeout and slow_start must be >= 0');
  });
}

function checkIndex(table: PeerTable, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= table.servers.length) {
    throw new RangeError(`balancer: no server with index ${index}`);
  }
}

/**
 * Builds a Balancer from a tier selector: primaries first, backups only when no primary is usable
 * for this request (nginx's `peers->next`), attempt accounting and health in the shared PeerTable.
 * `onRelease` lets an algorithm observe outcomes (ewma's latency).
 */
export function makeBalancer(
  algorithm: AlgorithmName,
  table: PeerTable,
  select: TierSelector,
  onRelease?: (index: number, outcome: AttemptOutcome, now: number) => void,
): Balancer {
  return {
    algorithm,
    servers: table.servers,
    pick(req: PickRequest, now: number): number {
      let i = select(table.primaries, req, now);
      if (i < 0 && table.backups.members.length > 0) i = select(table.backups, req, now);
      if (i >= 0) table.begin(i, now);
      return i;
    },
    release(index: number, outcome: AttemptOutcome, now: number): void {
      checkIndex(table, index);
      table.end(index, outcome.failed, now);
      onRelease?.(index, outcome, now);
    },
    setHealthy(index: number, healthy: boolean, now: number): void {
      checkIndex(table, index);
      table.setHealthy(index, healthy, now);
    },
    state(index: number, now: number): ServerState {
      checkIndex(table, index);
      return table.state(index, now);
    },
  };
}

/** Validates the servers and creates their shared state. */
export function newPeerTable(algorithm: AlgorithmName, servers: readonly ServerSpec[]): PeerTable {
  validateServers(algorithm, servers);
  return new PeerTable(servers);
}

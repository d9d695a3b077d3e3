import { isTgError } from '@tiergate/errors';
import type { IpvsDriver, IpvsServiceEntry } from '@tiergate/ipvs';
import { destKey, serviceKey } from '@tiergate/ipvs';
import { type ApplyReport, applyOps, type IpvsWriter } from './apply.ts';
import { servicesByKey } from './config-diff.ts';
import { configuredKeys, desiredEntries, type HealthSnapshot, healthKey, type VirtualService } from './desired.ts';
import { withDraining } from './drain.ts';
import type { HeldServer, HeldServers } from './manual-drain.ts';
import { type Op, plan } from './plan.ts';
import type { DirectorState, StateStore } from './state-store.ts';
import type { TableModel } from './table-model.ts';

/**
 * healthKeys of every configured real server (`configuredKeys`), per services array: the daemon passes the same
 * array to every full cycle, and with thousands of real servers these keys were a visible part of a cycle. Built
 * on first use, since drain asks only about a destination the config does not want (none on a start from an
 * empty table, none on a resync that finds the table as planned). A WeakMap, so a reloaded config's keys go with
 * it. (A services cycle derives them for its few services only: a reload must not pay for all of them.)
 */
const configuredMemo = new WeakMap<readonly VirtualService[], Set<string>>();

function configuredOf(services: readonly VirtualService[]): ReadonlySet<string> {
  let keys = configuredMemo.get(services);
  if (!keys) {
    keys = configuredKeys(services);
    configuredMemo.set(services, keys);
  }
  return keys;
}

export interface CycleInput {
  readonly services: readonly VirtualService[];
  readonly driver: Pick<IpvsDriver, 'listServices'> & Parameters<typeof applyOps>[0];
  readonly state: StateStore;
  readonly health: HealthSnapshot;
  /** ms since the epoch (injected clock). */
  readonly now: number;
  /** Plan only: nothing is written to the kernel or the state file. */
  readonly dryRun?: boolean;
  /** Real servers drained by hand (the daemon's); absent: those of the state file (`director apply` keeps them). */
  readonly held?: HeldServers;
}

export interface CycleResult {
  /** The kernel's table as read at the start of the cycle. */
  readonly actual: IpvsServiceEntry[];
  /** What the cycle wanted (config × health, plus draining servers). */
  readonly desired: IpvsServiceEntry[];
  readonly ops: Op[];
  /** Absent on a dry run. */
  readonly report?: ApplyReport;
  /** healthKeys of real servers draining after this cycle. */
  readonly draining: ReadonlyMap<string, number>;
  /** What the state store holds after the cycle (absent on a dry run). */
  readonly state?: DirectorState;
}

/**
 * One reconcile: read the kernel (the source of truth), compute config × health, add draining servers, plan
 * against the table and the owned keys, record ownership of every service about to exist, apply, then record
 * the final ownership. Throws the apply error (TG_DIRECTOR_APPLY_PARTIAL) after saving what is known.
 */
export async function reconcileCycle(input: CycleInput): Promise<CycleResult> {
  const actual = await input.driver.listServices();
  const saved = await input.state.load();
  const held = input.held ?? heldOf(saved);
  const wanted = desiredEntries(input.services, input.health, held);
  // The config's index has every wanted key already (one per service; the state keeps each key once).
  const byKey = servicesByKey(input.services);
  const wantedKeys = [...byKey.keys()];
  const owned = new Set(saved.owned);
  for (const k of wantedKeys) owned.add(k);
  const { desired, draining } = withDraining({
    desired: wanted,
    actual,
    configured: { has: (key) => configuredOf(input.services).has(key) },
    draining: new Map(Object.entries(saved.draining)),
    now: input.now,
    drainTimeout: (k) => byKey.get(k)?.drain_timeout ?? 0,
  });
  const ops = plan(desired, actual, owned);
  if (input.dryRun) return { actual, desired, ops, draining };
  const drainingRecord = drainRecord(draining);
  // Write-ahead: claim every service this cycle may create before creating it.
  const heldRecord = heldRecordOf(held);
  const claim: DirectorState = { owned: [...owned].sort(), draining: drainingRecord, ...heldRecord };
  if (!sameState(saved, claim)) await input.state.save(claim);
  const report = await applyOps(input.driver, ops);
  const final: DirectorState = { owned: wantedKeys.sort(), draining: drainingRecord, ...heldRecord };
  if (!sameState(claim, final)) await input.state.save(final);
  return { actual, desired, ops, report, draining, state: final };
}

export interface ServicesCycleInput {
  /** Every configured virtual service (the whole config). */
  readonly services: readonly VirtualService[];
  /** The services to reconcile, by `serviceKey`: configured ones, or owned ones that just left the config. */
  readonly keys: ReadonlySet<string>;
  /** The kernel's table as the daemon knows it; updated with every op applied and every service re-read. */
  readonly table: TableModel;
  readonly driver: Pick<IpvsDriver, 'listDestinations'> & IpvsWriter;
  readonly state: StateStore;
  /** What the state store holds (the daemon keeps its last save). */
  readonly saved: DirectorState;
  /** Health of the real servers of `keys` at least. */
  readonly health: HealthSnapshot;
  /** ms since the epoch (injected clock). */
  readonly now: number;
  /** Real servers drained by hand (the daemon's); absent: those of `saved`. */
  readonly held?: HeldServers;
}

export interface ServicesCycleResult {
  /** What the cycle wanted for `keys` (config × health, plus draining servers). */
  readonly desired: IpvsServiceEntry[];
  readonly ops: Op[];
  readonly report: ApplyReport;
  /** healthKeys of every real server draining after this cycle (of all services, not only `keys`). */
  readonly draining: ReadonlyMap<string, number>;
  /** What the state store holds after the cycle. */
  readonly state: DirectorState;
  /** Services whose destinations were read from the kernel (to count a drain's active connections). */
  readonly reread: number;
}

/**
 * The daemon's cycle for a few services (those whose config or real-server health changed, or that are
 * draining): the same config × health → drain → plan → apply as `reconcileCycle`, but against the daemon's
 * model of the table instead of a read of the whole table. Only a service with a real server that left its config
 * is read from the kernel (one GET_DEST), for the active connections its drain waits on. Ownership is
 * written ahead as in `reconcileCycle`; applied ops are mirrored into the model. Throws the apply error
 * (TG_DIRECTOR_APPLY_PARTIAL), after which the model is to be thrown away (the caller resyncs).
 */
export async function reconcileServices(input: ServicesCycleInput): Promise<ServicesCycleResult> {
  const byKey = servicesByKey(input.services);
  const configured = [...input.keys].flatMap((k) => byKey.get(k) ?? []);
  // Drain needs these only for the services it looks at: those of this cycle.
  const configuredServers = configuredKeys(configured);
  const held = input.held ?? heldOf(input.saved);
  const wanted = desiredEntries(configured, input.health, held);
  const previous = new Map(Object.entries(input.saved.draining));
  const actual: IpvsServiceEntry[] = [];
  let reread = 0;
  for (const want of wanted) {
    const key = serviceKey(want.service);
    if (input.table.get(key) && hasLeftConfig(input.table.get(key) as IpvsServiceEntry, want, configuredServers)) {
      await rereadDestinations(input, key);
      reread += 1;
    }
  }
  for (const key of input.keys) {
    const cur = input.table.get(key);
    if (cur) actual.push(cur);
  }
  const { desired, draining: drainingNow } = withDraining({
    desired: wanted,
    actual,
    configured: configuredServers,
    draining: previous,
    now: input.now,
    drainTimeout: (k) => byKey.get(k)?.drain_timeout ?? 0,
  });
  // Drain times of the services not reconciled now stay as they were.
  const draining = new Map([...previous].filter(([hk]) => !input.keys.has(hk.slice(0, hk.indexOf(' ')))));
  for (const [hk, since] of drainingNow) draining.set(hk, since);
  const ownedBefore = ownedSetOf(input.saved.owned);
  const newlyOwned = wanted.map((e) => serviceKey(e.service)).filter((k) => !ownedBefore.has(k));
  const owned = newlyOwned.length === 0 ? ownedBefore : new Set([...ownedBefore, ...newlyOwned]);
  const ops = plan(desired, actual, owned);
  // Usually nothing new is owned: keep the saved list (no sort of every owned key per cycle).
  const claim: DirectorState = {
    owned: newlyOwned.length === 0 ? input.saved.owned : [...owned].sort(),
    draining: drainRecord(draining),
    ...heldRecordOf(held),
  };
  if (!sameState(input.saved, claim)) await input.state.save(claim);
  const report = await applyOps(input.driver, ops);
  input.table.applyAll(report.applied);
  // Services that left the config were deleted just now (or were not in the table): no longer owned.
  const gone = new Set([...input.keys].filter((k) => !byKey.has(k)));
  const final: DirectorState = gone.size === 0 ? claim : { ...claim, owned: claim.owned.filter((k) => !gone.has(k)) };
  if (!sameState(claim, final)) await input.state.save(final);
  return { desired, ops, report, draining, state: final, reread };
}

/**
 * The saved owned keys as a set, per saved list: a services cycle keeps the list it was given when nothing new is
 * owned, so the set of a thousand keys is built once, not on every health transition and reload.
 */
const ownedSets = new WeakMap<readonly string[], ReadonlySet<string>>();

function ownedSetOf(owned: readonly string[]): ReadonlySet<string> {
  let set = ownedSets.get(owned);
  if (!set) {
    set = new Set(owned);
    ownedSets.set(owned, set);
  }
  return set;
}

/** Whether the table holds a real server of this service that its config no longer has (a drain candidate). */
function hasLeftConfig(cur: IpvsServiceEntry, want: IpvsServiceEntry, configured: ReadonlySet<string>): boolean {
  const svcKey = serviceKey(want.service);
  const wanted = new Set(want.destinations.map(destKey));
  return cur.destinations.some((d) => !wanted.has(destKey(d)) && !configured.has(healthKey(svcKey, destKey(d))));
}

/** One service's destinations from the kernel into the model; a service gone from the kernel leaves the model. */
async function rereadDestinations(input: ServicesCycleInput, key: string): Promise<void> {
  const cur = input.table.get(key) as IpvsServiceEntry;
  try {
    input.table.setDestinations(key, await input.driver.listDestinations(cur.service));
  } catch (err) {
    if (!isTgError(err, 'TG_IPVS_NO_SERVICE')) throw err;
    input.table.delete(key);
  }
}

/** Drain times as the state file keeps them: sorted, so equal maps compare equal. */
function drainRecord(draining: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries([...draining].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sameState(a: DirectorState, b: DirectorState): boolean {
  const sameOwned = a.owned === b.owned || (a.owned.length === b.owned.length && a.owned.every((k, i) => k === b.owned[i]));
  return sameOwned && JSON.stringify(a.draining) === JSON.stringify(b.draining) && JSON.stringify(a.held) === JSON.stringify(b.held);
}

/** The held servers a state file records. */
function heldOf(state: DirectorState): HeldServers {
  return new Map(Object.entries(state.held ?? {}));
}

/** `{ held }` for a state to save, sorted so equal maps compare equal; `{}` when none is held (the field stays absent). */
function heldRecordOf(held: HeldServers): { held?: Record<string, HeldServer> } {
  if (held.size === 0) return {};
  return { held: Object.fromEntries([...held].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
}

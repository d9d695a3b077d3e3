import type { IpvsDriver, IpvsServiceEntry } from '@tiergate/ipvs';
import { serviceKey } from '@tiergate/ipvs';
import { type ApplyReport, applyOps } from './apply.ts';
import { configuredKeys, desiredEntries, type HealthSnapshot, serviceIdOfConfig, type VirtualService } from './desired.ts';
import { withDraining } from './drain.ts';
import { type Op, plan } from './plan.ts';
import type { DirectorState, StateStore } from './state-store.ts';

/** What a cycle derives from the config alone. */
interface ConfigFacts {
  readonly configured: Set<string>;
  readonly drainTimeouts: Map<string, number>;
}

/**
 * ConfigFacts per services array: the daemon passes the same array every cycle, and with thousands of real
 * servers recomputing these keys was a visible part of a no-op cycle. A WeakMap, so a reloaded config's facts go
 * with it.
 */
const configFacts = new WeakMap<readonly VirtualService[], ConfigFacts>();

function factsOf(services: readonly VirtualService[]): ConfigFacts {
  let facts = configFacts.get(services);
  if (!facts) {
    facts = {
      configured: configuredKeys(services),
      drainTimeouts: new Map(services.map((vs) => [serviceKey(serviceIdOfConfig(vs)), vs.drain_timeout])),
    };
    configFacts.set(services, facts);
  }
  return facts;
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
}

/**
 * One reconcile: read the kernel (the source of truth), compute config × health, add draining servers, plan
 * against the table and the owned keys, record ownership of every service about to exist, apply, then record
 * the final ownership. Throws the apply error (TG_DIRECTOR_APPLY_PARTIAL) after saving what is known.
 */
export async function reconcileCycle(input: CycleInput): Promise<CycleResult> {
  const actual = await input.driver.listServices();
  const saved = await input.state.load();
  const wanted = desiredEntries(input.services, input.health);
  const wantedKeys = wanted.map((e) => serviceKey(e.service));
  const owned = new Set([...saved.owned, ...wantedKeys]);
  const facts = factsOf(input.services);
  const { desired, draining } = withDraining({
    desired: wanted,
    actual,
    configured: facts.configured,
    draining: new Map(Object.entries(saved.draining)),
    now: input.now,
    drainTimeout: (k) => facts.drainTimeouts.get(k) ?? 0,
  });
  const ops = plan(desired, actual, owned);
  if (input.dryRun) return { actual, desired, ops, draining };
  const drainingRecord = Object.fromEntries(draining);
  // Write-ahead: claim every service this cycle may create before creating it.
  const claim: DirectorState = { owned: [...owned].sort(), draining: drainingRecord };
  if (!sameState(saved, claim)) await input.state.save(claim);
  const report = await applyOps(input.driver, ops);
  const final: DirectorState = { owned: [...new Set(wantedKeys)].sort(), draining: drainingRecord };
  if (!sameState(claim, final)) await input.state.save(final);
  return { actual, desired, ops, report, draining };
}

function sameState(a: DirectorState, b: DirectorState): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

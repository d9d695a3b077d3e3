import { context, isSpanContextValid, ROOT_CONTEXT, type SpanContext, trace } from '@opentelemetry/api';
import { isTgError } from '@tiergate/errors';
import type { HealthChange } from '@tiergate/health';
import { describeService, destKey, type IpvsDriver, type IpvsServiceEntry, type IpvsStats, serviceKey } from '@tiergate/ipvs';
import type { PartialApplyDetails } from './apply.ts';
import { type CycleResult, reconcileCycle } from './cycle.ts';
import { healthKey, serviceIdOfConfig, type VirtualService } from './desired.ts';
import { type CycleOutcome, endReconcileSpan, healthTransitionSpan, MAX_TRANSITION_LINKS, startReconcileSpan } from './director-spans.ts';
import { type Logger, silentLogger } from './logger.ts';
import { DirectorMetrics } from './metrics.ts';
import { RealServerHealth } from './real-server-health.ts';
import type { StateStore } from './state-store.ts';

export interface DirectorOptions {
  readonly name: string;
  readonly services: readonly VirtualService[];
  readonly driver: Pick<
    IpvsDriver,
    'listServices' | 'addService' | 'updateService' | 'deleteService' | 'addDestination' | 'updateDestination' | 'deleteDestination'
  >;
  readonly state: StateStore;
  /** `director.reconcile_interval` (ms). */
  readonly intervalMs: number;
  readonly logger?: Logger;
  readonly metrics?: DirectorMetrics;
  readonly now?: () => number;
  readonly random?: () => number;
}

/** Counters as JSON numbers (IPVS keeps u64; JSON readers lose precision only past 2^53 bytes). */
export type StatsJson = Record<keyof IpvsStats, number>;

export interface DestinationStatus {
  readonly server: string;
  readonly forward: string;
  readonly weight: number;
  /** null when the service has no health check. */
  readonly healthy: boolean | null;
  readonly draining: boolean;
  readonly activeConns: number;
  readonly inactConns: number;
  readonly stats: StatsJson | null;
}

export interface ServiceStatus {
  readonly key: string;
  readonly service: string;
  readonly scheduler: string;
  readonly persistent: boolean;
  readonly timeout: number;
  /** false for a service someone else created in the same table (shown, never touched). */
  readonly managed: boolean;
  readonly stats: StatsJson | null;
  readonly destinations: DestinationStatus[];
}

/** What GET /status answers. */
export interface DirectorStatus {
  readonly director: string;
  readonly cycles: number;
  readonly lastCycle: {
    readonly at: number;
    readonly durationMs: number;
    readonly ops: number;
    readonly error: { code: string; message: string } | null;
  } | null;
  readonly services: ServiceStatus[];
}

/**
 * The director daemon: reconciles the kernel's IPVS table with config × real-server health every
 * `intervalMs` and at once on every health transition, one cycle at a time. The kernel is the source of truth:
 * each cycle re-reads it, so changes made behind tiergate's back are repaired and a restart starts from what
 * the table holds. Nothing here ever flushes the table; `stop()` leaves it as it is.
 * Traced through @opentelemetry/api (no-ops without an SDK): one root span `director reconcile` per cycle,
 * one `director health transition` per health change, linked from the cycle it triggers (director-spans.ts).
 */
export class Director implements AsyncDisposable {
  readonly metrics: DirectorMetrics;
  readonly #o: DirectorOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #health: RealServerHealth;
  readonly #managed: Set<string>;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  #cycles = 0;
  #last: DirectorStatus['lastCycle'] = null;
  #table: IpvsServiceEntry[] = [];
  #draining: ReadonlyMap<string, number> = new Map();
  /** Health transitions since the last cycle started: the next reconcile span links to them. */
  #transitions: SpanContext[] = [];

  constructor(options: DirectorOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.metrics = options.metrics ?? new DirectorMetrics();
    this.#managed = new Set(options.services.map((vs) => serviceKey(serviceIdOfConfig(vs))));
    this.#health = new RealServerHealth(options.services, (key, change) => this.#onHealth(key, change), options.random);
  }

  /** Starts health checks and runs the first cycle (its failure is logged, not thrown: the loop retries). */
  async start(): Promise<void> {
    this.#health.start();
    await this.reconcileNow();
  }

  /** Runs a cycle now, or once more right after the one in progress. Resolves when the table is reconciled. */
  reconcileNow(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#running = this.#loop().finally(() => {
      this.#running = null;
      this.#schedule();
    });
    return this.#running;
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      await this.#cycle();
    } while (this.#again && !this.#stopped);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.reconcileNow(), this.#o.intervalMs);
  }

  /** One traced cycle: a `director reconcile` span, active while it runs so its log lines carry the trace id. */
  async #cycle(): Promise<void> {
    const span = startReconcileSpan(this.#o.name, this.#transitions.splice(0));
    const outcome = await context.with(trace.setSpan(ROOT_CONTEXT, span), () => this.#reconcileOnce());
    endReconcileSpan(span, outcome);
  }

  async #reconcileOnce(): Promise<CycleOutcome> {
    const started = performance.now();
    const at = this.#now();
    let result: CycleResult | undefined;
    let error: { code: string; message: string } | null = null;
    let partial = { planned: 0, applied: 0 };
    try {
      result = await reconcileCycle({
        services: this.#o.services,
        driver: this.#o.driver,
        state: this.#o.state,
        health: this.#health.snapshot(),
        now: at,
      });
      this.#draining = result.draining;
      for (const op of result.report?.applied ?? []) this.metrics.ops.inc({ kind: op.kind });
      this.#table = result.ops.length > 0 ? await this.#o.driver.listServices() : result.actual;
      if (result.ops.length > 0) this.#log.info({ ops: result.ops.length, tolerated: result.report?.tolerated.length ?? 0 }, 'reconciled');
    } catch (err) {
      error = { code: isTgError(err) ? err.code : 'unknown', message: (err as Error).message };
      partial = partialCounts(err);
      this.#log.error({ err, details: isTgError(err) ? err.details : undefined }, 'reconcile failed; retrying next cycle');
    }
    const durationMs = performance.now() - started;
    this.#cycles += 1;
    this.#last = { at, durationMs, ops: result?.ops.length ?? 0, error };
    this.metrics.cycles.inc({ result: error ? 'error' : 'ok' });
    this.metrics.cycleSeconds.observe(durationMs / 1000);
    this.#updateGauges();
    const report = result?.report;
    return {
      planned: result?.ops.length ?? partial.planned,
      applied: report?.applied.length ?? partial.applied,
      tolerated: report?.tolerated.length ?? 0,
      error,
    };
  }

  #onHealth(key: string, change: HealthChange): void {
    const state = change.healthy ? 'up' : 'down';
    this.metrics.transitions.inc({ service: change.monitor, state });
    const span = healthTransitionSpan(this.#o.name, key.slice(key.indexOf(' ') + 1), change);
    // An invalid context is what a no-op span (tracing off) has: nothing to link to.
    if (isSpanContextValid(span.spanContext()) && this.#transitions.length < MAX_TRANSITION_LINKS)
      this.#transitions.push(span.spanContext());
    context.with(trace.setSpan(ROOT_CONTEXT, span), () =>
      this.#log.warn({ server: key, service: change.monitor, state, detail: change.result.detail }, `real server ${state}`),
    );
    void this.reconcileNow();
  }

  #updateGauges(): void {
    const health = this.#health.snapshot();
    for (const [key, healthy] of health) {
      const [service = '', server = ''] = key.split(' ');
      this.metrics.healthy.set({ service, server }, healthy ? 1 : 0);
    }
    for (const e of this.#table) {
      const service = serviceKey(e.service);
      if (!this.#managed.has(service)) continue;
      for (const d of e.destinations) {
        this.metrics.weight.set({ service, server: destKey(d) }, d.weight);
        this.metrics.activeConns.set({ service, server: destKey(d) }, d.activeConns ?? 0);
      }
    }
  }

  /** The table as last read, with health and drain state: what GET /status answers. */
  status(): DirectorStatus {
    return buildStatus(this.#o.name, this.#table, {
      managed: this.#managed,
      health: this.#health.snapshot(),
      draining: this.#draining,
      cycles: this.#cycles,
      lastCycle: this.#last,
    });
  }

  /** Stops the loop and the health checks and waits for a cycle in progress. The IPVS table is left as it is. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
    await this.#health.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Ops a failed cycle planned, and did before failing, from TG_DIRECTOR_APPLY_PARTIAL's details (0 and 0 otherwise). */
function partialCounts(err: unknown): { planned: number; applied: number } {
  const details = isTgError(err) && err.code === 'TG_DIRECTOR_APPLY_PARTIAL' ? (err.details as PartialApplyDetails) : undefined;
  if (!details) return { planned: 0, applied: 0 };
  return { planned: details.applied.length + 1 + details.notAttempted.length, applied: details.applied.length };
}

export function statsJson(s: IpvsStats | undefined): StatsJson | null {
  if (!s) return null;
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, Number(v)])) as StatsJson;
}

/** A DirectorStatus from a table read from the kernel (the daemon's, or `director status` without a daemon). Pure. */
export function buildStatus(
  name: string,
  table: readonly IpvsServiceEntry[],
  ctx: {
    managed: ReadonlySet<string>;
    health: ReadonlyMap<string, boolean>;
    draining: ReadonlyMap<string, number>;
    cycles: number;
    lastCycle: DirectorStatus['lastCycle'];
  },
): DirectorStatus {
  const services = table.map((e): ServiceStatus => {
    const key = serviceKey(e.service);
    return {
      key,
      service: describeService(e.service),
      scheduler: e.service.scheduler,
      persistent: e.service.flags.persistent,
      timeout: e.service.timeout,
      managed: ctx.managed.has(key),
      stats: statsJson(e.service.stats),
      destinations: e.destinations.map((d) => {
        const hk = healthKey(key, destKey(d));
        return {
          server: destKey(d),
          forward: d.forward,
          weight: d.weight,
          healthy: ctx.health.get(hk) ?? null,
          draining: ctx.draining.has(hk),
          activeConns: d.activeConns ?? 0,
          inactConns: d.inactConns ?? 0,
          stats: statsJson(d.stats),
        };
      }),
    };
  });
  return { director: name, cycles: ctx.cycles, lastCycle: ctx.lastCycle, services };
}

import { context, isSpanContextValid, ROOT_CONTEXT, type SpanContext, trace } from '@opentelemetry/api';
import type { DeepReadonly, DirectorConfig } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import type { HealthChange } from '@tiergate/health';
import { describeService, destKey, type IpvsDriver, type IpvsServiceEntry, type IpvsStats, serviceKey } from '@tiergate/ipvs';
import type { ApplyReport, PartialApplyDetails } from './apply.ts';
import { diffServices, servicesByKey } from './config-diff.ts';
import { reconcileCycle, reconcileServices } from './cycle.ts';
import { configuredKeys, healthKey, serviceIdOfConfig, type VirtualService } from './desired.ts';
import { type CycleOutcome, endReconcileSpan, healthTransitionSpan, MAX_TRANSITION_LINKS, startReconcileSpan } from './director-spans.ts';
import { applyDirectorSysctls } from './host-setup.ts';
import { type Logger, silentLogger } from './logger.ts';
import { type HeldServer, resolveServer } from './manual-drain.ts';
import { DirectorMetrics, serviceLabels } from './metrics.ts';
import type { Op } from './plan.ts';
import { RealServerHealth } from './real-server-health.ts';
import { type DirectorState, EMPTY_STATE, type StateStore } from './state-store.ts';
import { TableModel } from './table-model.ts';

export interface DirectorOptions {
  readonly name: string;
  readonly services: readonly VirtualService[];
  readonly driver: Pick<IpvsDriver, 'listServices' | 'listDestinations' | 'applyBatch'>;
  readonly state: StateStore;
  /** `director.reconcile_interval` (ms): how often the daemon looks for work (drain progress, a resync due). */
  readonly intervalMs: number;
  /** `director.resync_interval` (ms): how often the whole table is read and planned (default 30 s). */
  readonly resyncMs?: number;
  readonly logger?: Logger;
  readonly metrics?: DirectorMetrics;
  readonly now?: () => number;
  readonly random?: () => number;
  /**
   * The director entry whose host sysctls a reload applies again (`applyDirectorSysctls`: a NAT service added by
   * a reload needs ip_forward); `sysctlRoot` replaces /proc/sys in tests. Without it a reload touches no sysctl.
   */
  readonly host?: { readonly director: DeepReadonly<DirectorConfig>; readonly sysctlRoot?: string };
  /** How often a drain by hand reads its server's active connections from the kernel (default 1 s). */
  readonly drainPollMs?: number;
}

/** A drain by hand (`director drain`, POST /drain): which server, and what became of it. */
export interface ManualDrainResult {
  readonly service: string;
  readonly server: string;
  /** `draining` when the caller did not wait; else `drained` (weight 0 kept) or `removed`. */
  readonly phase: HeldServer['phase'];
  readonly after: HeldServer['after'];
  /** Active connections at the last read (the kernel's ActiveConn); -1 when that read failed. */
  readonly activeConns: number;
  /** The timeout passed before the connections reached 0. */
  readonly timedOut: boolean;
  readonly waitedMs: number;
}

/** A real server held by hand, as GET /status lists it. */
export interface HeldStatus {
  readonly service: string;
  readonly server: string;
  readonly phase: HeldServer['phase'];
  readonly after: HeldServer['after'];
  readonly since: number;
  readonly timeoutMs: number;
}

/** The `director.resync_interval` default (ms), kube-proxy's IPVS sync period. */
export const DEFAULT_RESYNC_MS = 30_000;

/**
 * What a cycle did: `full` read and planned the whole table; `services` planned only the services whose config
 * or health changed, or that are draining, against the daemon's model of the table; `idle` had nothing to do
 * and touched neither the kernel nor the state file.
 */
export type CycleKind = 'full' | 'services' | 'idle';

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
    readonly kind: CycleKind;
    readonly durationMs: number;
    readonly ops: number;
    readonly error: { code: string; message: string } | null;
  } | null;
  readonly services: ServiceStatus[];
  /** Real servers drained by hand (`tiergate director drain`) until undrained; a removed one is in no service's list. */
  readonly held?: HeldStatus[];
}

/**
 * The director daemon: keeps the kernel's IPVS table equal to config × real-server health. It keeps a model of
 * the table (TableModel: set from the last full read, then updated with every op the kernel accepts), and a
 * cycle normally plans only the services that need it: those whose real servers changed health, whose config
 * a reload changed, or that are draining. One health transition is then one plan of one service and one
 * SET_DEST; a cycle with nothing to do reads nothing and writes nothing. A full cycle (read the whole table,
 * plan every service) runs at start, after a failed or surprised apply (the model may be wrong), on
 * `POST /reconcile`, and every `resyncMs`, so a change made behind tiergate's back is repaired within one resync
 * interval (kube-proxy's periodic sync; keepalived never re-reads). Cycles run one at a time: at once on a
 * health transition or reload, and every `intervalMs`. Nothing here ever flushes the table; `stop()` leaves it
 * as it is. Traced through @opentelemetry/api (no-ops without an SDK): one root span `director reconcile` per
 * cycle, one `director health transition` per health change, linked from the cycle it triggers.
 */
export class Director implements AsyncDisposable {
  readonly metrics: DirectorMetrics;
  readonly #o: DirectorOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #resyncMs: number;
  readonly #health: RealServerHealth;
  #services: readonly VirtualService[];
  /** The configured services by key (what status calls managed): the config's index, not a copy of its keys. */
  #managed: ReadonlyMap<string, VirtualService>;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  #cycles = 0;
  #last: DirectorStatus['lastCycle'] = null;
  /** The kernel's table as the daemon knows it; trusted only after a full cycle and while every apply succeeds. */
  #table = new TableModel();
  #trusted = false;
  /** What the state store holds (known after the first full cycle). */
  #saved: DirectorState = EMPTY_STATE;
  #fullRequested = false;
  #resyncAt = 0;
  /** Service keys whose desired entries may have changed since the last cycle started. */
  #dirty = new Set<string>();
  #draining: ReadonlyMap<string, number> = new Map();
  /** Health transitions since the last cycle started: the next reconcile span links to them. */
  #transitions: SpanContext[] = [];
  /** Real servers drained by hand, by healthKey (manual-drain.ts); saved in the state file by every cycle. */
  #held = new Map<string, HeldServer>();
  /** The running wait of each `draining` held server (by its entry: a new drain of the same server is a new wait). */
  #watchers = new Map<HeldServer, Promise<ManualDrainResult>>();
  #wake = new Set<() => void>();
  /** Fresh table reads started, and the newest one the metrics' snapshot is from. */
  #reads = 0;
  #metricsRead = 0;

  constructor(options: DirectorOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#resyncMs = options.resyncMs ?? DEFAULT_RESYNC_MS;
    this.metrics = options.metrics ?? new DirectorMetrics();
    this.#services = options.services;
    this.#managed = servicesByKey(options.services);
    this.#health = new RealServerHealth(options.services, (key, change) => this.#onHealth(key, change), options.random);
  }

  /**
   * Runs the first (full) cycle, then starts the health checks (a failed cycle is logged, not thrown: the loop
   * retries). The table goes in first: every real server starts healthy, so no probe could change what that
   * cycle writes, and a first round of probes (one connection per checked real server) would only compete with it.
   */
  async start(): Promise<void> {
    // Servers drained by hand before a restart stay so (the state file outlives the daemon, not a reboot).
    const saved = await this.#o.state.load();
    this.#held = new Map(Object.entries(saved.held ?? {}));
    this.#pruneHeld();
    await this.reconcileNow();
    if (this.#stopped) return;
    this.#health.start();
    for (const [key, h] of this.#held) if (h.phase === 'draining') void this.#watch(key, h);
  }

  /**
   * Drains one configured real server by hand (`ipvsadm -e -w 0`, kept): weight 0 at once, whatever its health;
   * then, once its active connections reach 0 or `timeoutMs` (default: the service's drain_timeout) passed, it is
   * deleted from the service (`after: 'remove'`) or kept at weight 0 (`keep`, the default). Either way it stays so
   * across cycles, reloads and restarts until `undrain`. `service`/`server` as resolveServer takes them; unknown
   * ones reject with TG_DIRECTOR_UNKNOWN_SERVER. Resolves once the table has weight 0 (`wait: false`), or when the
   * drain is over. Draining a server already held starts its drain again with these settings.
   */
  async drain(
    service: string,
    server: string,
    opts: { timeoutMs?: number; after?: 'remove' | 'keep'; wait?: boolean } = {},
  ): Promise<ManualDrainResult> {
    const r = resolveServer(this.#services, service, server);
    const held: HeldServer = {
      since: this.#now(),
      timeoutMs: opts.timeoutMs ?? r.service.drain_timeout,
      after: opts.after ?? 'keep',
      phase: 'draining',
    };
    this.#held.set(r.key, held);
    for (const wake of this.#wake) wake(); // a wait of an earlier drain of this server ends
    this.#log.warn({ service: r.svcKey, server: r.dstKey, after: held.after, timeoutMs: held.timeoutMs }, 'real server drained by hand');
    this.#dirty.add(r.svcKey);
    await this.reconcileNow();
    const watching = this.#watch(r.key, held);
    if (opts.wait === false) return { ...this.#resultOf(r.key, held, 0, false), phase: 'draining' };
    return watching;
  }

  /** Gives a server drained by hand back to config × health (its configured weight when healthy). False when it was not held. */
  async undrain(service: string, server: string): Promise<{ service: string; server: string; restored: boolean }> {
    const r = resolveServer(this.#services, service, server);
    const restored = this.#held.delete(r.key);
    if (restored) {
      for (const wake of this.#wake) wake();
      this.#log.warn({ service: r.svcKey, server: r.dstKey }, 'real server undrained');
      this.#dirty.add(r.svcKey);
      await this.reconcileNow();
    }
    return { service: r.svcKey, server: r.dstKey, restored };
  }

  /** The wait of one `draining` server: polls its active connections until 0 or its timeout, then ends its drain. */
  #watch(key: string, h: HeldServer): Promise<ManualDrainResult> {
    let w = this.#watchers.get(h);
    if (!w) {
      w = this.#waitDrained(key, h).finally(() => this.#watchers.delete(h));
      this.#watchers.set(h, w);
    }
    return w;
  }

  async #waitDrained(key: string, h: HeldServer): Promise<ManualDrainResult> {
    const pollMs = this.#o.drainPollMs ?? 1_000;
    for (;;) {
      // A failed read is retried at the next poll (the timeout still runs): this wait runs unattended after
      // `wait: false` and a restart, where a rejection would be an unhandled one, fatal to the daemon.
      let conns = -1;
      try {
        conns = await this.#activeConns(key);
      } catch (err) {
        this.#log.warn({ err, server: key }, 'drain by hand: cannot read active connections; retrying');
      }
      // Undrained, drained again (a new entry) or stopped meanwhile: this wait is over.
      const current = this.#held.get(key);
      if (current !== h || this.#stopped) return this.#resultOf(key, current ?? h, conns, false);
      const timedOut = conns !== 0 && this.#now() - h.since >= h.timeoutMs;
      if (conns === 0 || timedOut) {
        const done: HeldServer = { ...h, phase: h.after === 'remove' ? 'removed' : 'drained' };
        this.#held.set(key, done);
        this.#log.warn({ server: key, phase: done.phase, activeConns: conns, timedOut }, 'drain by hand done');
        this.#dirty.add(key.slice(0, key.indexOf(' ')));
        await this.reconcileNow();
        return this.#resultOf(key, done, conns, timedOut);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#wake.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, pollMs);
        this.#wake.add(wake);
      });
    }
  }

  /** The kernel's ActiveConn of a held server (a fresh GET_DEST of its service); 0 when it is not in the table. */
  async #activeConns(key: string): Promise<number> {
    const svcKey = key.slice(0, key.indexOf(' '));
    const vs = this.#managed.get(svcKey);
    if (!vs) return 0;
    try {
      const dests = await this.#o.driver.listDestinations(serviceIdOfConfig(vs));
      return dests.find((d) => healthKey(svcKey, destKey(d)) === key)?.activeConns ?? 0;
    } catch (err) {
      if (isTgError(err, 'TG_IPVS_NO_SERVICE')) return 0;
      throw err;
    }
  }

  #resultOf(key: string, h: HeldServer, activeConns: number, timedOut: boolean): ManualDrainResult {
    const [service = '', server = ''] = key.split(' ');
    return { service, server, phase: h.phase, after: h.after, activeConns, timedOut, waitedMs: Math.max(0, this.#now() - h.since) };
  }

  /** Held servers whose server or service left the config are forgotten (re-added later, they are not held). */
  #pruneHeld(): void {
    if (this.#held.size === 0) return;
    const configured = configuredKeys(this.#services);
    for (const key of this.#held.keys()) if (!configured.has(key)) this.#held.delete(key);
  }

  /**
   * Runs a cycle now, or once more right after the one in progress; `full` makes it a full cycle (read and plan
   * the whole table). Resolves when the table is reconciled.
   */
  reconcileNow(options: { full?: boolean } = {}): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (options.full) this.#fullRequested = true;
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

  /**
   * Takes a new config's virtual services (already validated) and reconciles what changed: services added,
   * removed or whose settings differ are planned against the model. Real servers keep their health across it
   * (also when their check changes, a server not known healthy waits for a pass of the new one); a server new to
   * the config is down until its first passing check (RealServerHealth). With `host`, the director's sysctls are
   * applied again first (a NAT service needs ip_forward before it forwards); a failure there is logged and the
   * reload goes on (the table still follows the file; the next reload tries again). A config the director cannot
   * use (TG_CONFIG_INVALID, e.g. a check without a port) rejects and changes nothing. Resolves when the table is
   * reconciled.
   */
  async reload(services: readonly VirtualService[]): Promise<void> {
    const changedChecks = this.#health.update(services);
    const { byKey, changed } = diffServices(this.#services, services);
    for (const key of [...changed, ...changedChecks]) this.#dirty.add(key);
    this.#services = services;
    this.#managed = byKey;
    this.#pruneHeld();
    if (this.#o.host) await this.#applySysctls(this.#o.host, services);
    return this.reconcileNow();
  }

  async #applySysctls(host: NonNullable<DirectorOptions['host']>, services: readonly VirtualService[]): Promise<void> {
    try {
      for (const change of await applyDirectorSysctls(host.director, services, host.sysctlRoot)) this.#log.info({ change }, 'host setup');
    } catch (err) {
      this.#log.error({ err }, 'host sysctls not applied on reload; the reload goes on');
    }
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
    const kind: CycleKind =
      !this.#trusted || this.#fullRequested || at >= this.#resyncAt ? 'full' : this.#pendingKeys().size > 0 ? 'services' : 'idle';
    const keys = kind === 'services' ? this.#pendingKeys() : new Set<string>();
    // Marks made while this cycle runs are for the next one (a transition also asks for it: #again).
    this.#dirty = new Set();
    if (kind === 'full') this.#fullRequested = false;
    let ops: Op[] = [];
    let report: ApplyReport | undefined;
    let error: { code: string; message: string } | null = null;
    let partial = { planned: 0, applied: 0 };
    try {
      if (kind === 'full') ({ ops, report } = await this.#fullCycle(at));
      else if (kind === 'services') ({ ops, report } = await this.#servicesCycle(keys, at));
      if (report) this.#countOps(report.applied);
      if (ops.length > 0) this.#log.info({ kind, ops: ops.length, tolerated: report?.tolerated.length ?? 0 }, 'reconciled');
    } catch (err) {
      // The model may be wrong now (which ops did the kernel take?): the next cycle reads the table.
      this.#trusted = false;
      error = { code: isTgError(err) ? err.code : 'unknown', message: (err as Error).message };
      partial = partialCounts(err);
      this.#log.error({ err, kind, details: isTgError(err) ? err.details : undefined }, 'reconcile failed; retrying next cycle');
    }
    const durationMs = performance.now() - started;
    this.#cycles += 1;
    this.#last = { at, kind, durationMs, ops: error ? partial.planned : ops.length, error };
    this.metrics.cycles.inc({ result: error ? 'error' : 'ok', kind });
    if (error) this.metrics.cycleErrors.inc({ code: error.code });
    this.metrics.cycleSeconds.observe({ kind }, durationMs / 1000);
    return {
      planned: error ? partial.planned : ops.length,
      applied: report?.applied.length ?? partial.applied,
      tolerated: report?.tolerated.length ?? 0,
      error,
    };
  }

  /** tiergate_director_ops_total by kind: not one counter update per op (a full apply has ~11,000). */
  #countOps(applied: readonly Op[]): void {
    // Applied ops come in runs of one kind (OP_ORDER): one update per run.
    for (let start = 0; start < applied.length; ) {
      const kind = (applied[start] as Op).kind;
      let end = start + 1;
      while (end < applied.length && (applied[end] as Op).kind === kind) end += 1;
      this.metrics.ops.inc({ kind }, end - start);
      start = end;
    }
  }

  /** Services to plan in a `services` cycle: the dirty ones and those with a real server draining. */
  #pendingKeys(): Set<string> {
    const keys = new Set(this.#dirty);
    for (const hk of this.#draining.keys()) keys.add(hk.slice(0, hk.indexOf(' ')));
    return keys;
  }

  /** Reads the whole table, plans every service (reconcileCycle) and makes the result the model. */
  async #fullCycle(at: number): Promise<{ ops: Op[]; report: ApplyReport | undefined }> {
    const r = await reconcileCycle({
      services: this.#services,
      driver: this.#o.driver,
      state: this.#o.state,
      health: this.#health.snapshot(),
      now: at,
      held: this.#held,
    });
    const table = new TableModel(r.actual);
    if (r.report) table.applyAll(r.report.applied);
    this.#table = table;
    this.#saved = r.state ?? this.#saved;
    this.#draining = r.draining;
    this.#resyncAt = at + this.#resyncMs;
    // "Already so" answers mean someone else changed the table since the read: read it again next cycle.
    this.#trusted = (r.report?.tolerated.length ?? 0) === 0;
    return { ops: r.ops, report: r.report };
  }

  /** Plans only `keys` against the model (reconcileServices). */
  async #servicesCycle(keys: ReadonlySet<string>, at: number): Promise<{ ops: Op[]; report: ApplyReport }> {
    const r = await reconcileServices({
      services: this.#services,
      keys,
      table: this.#table,
      driver: this.#o.driver,
      state: this.#o.state,
      saved: this.#saved,
      health: this.#health.snapshot(keys),
      now: at,
      held: this.#held,
    });
    this.#saved = r.state;
    this.#draining = r.draining;
    if (r.report.tolerated.length > 0) this.#trusted = false;
    return { ops: r.ops, report: r.report };
  }

  #onHealth(key: string, change: HealthChange): void {
    const state = change.healthy ? 'up' : 'down';
    const [service = '', server = ''] = key.split(' ');
    const vs = this.#managed.get(service);
    if (vs) this.metrics.transitions.inc({ ...serviceLabels(vs), server, state });
    const span = healthTransitionSpan(this.#o.name, server, change);
    // An invalid context is what a no-op span (tracing off) has: nothing to link to.
    if (isSpanContextValid(span.spanContext()) && this.#transitions.length < MAX_TRANSITION_LINKS)
      this.#transitions.push(span.spanContext());
    context.with(trace.setSpan(ROOT_CONTEXT, span), () =>
      this.#log.warn({ server: key, service: change.monitor, state, detail: change.result.detail }, `real server ${state}`),
    );
    if (service !== '') this.#dirty.add(service);
    void this.reconcileNow();
  }

  /** What the last cycle did (null before the first), as `status()` has it, without building the table's status. */
  get lastCycle(): DirectorStatus['lastCycle'] {
    return this.#last;
  }

  /** The table as the daemon models it (counters as of their last read), with health and drain state. */
  status(): DirectorStatus {
    return this.#statusOf(this.#table.entries());
  }

  /**
   * Status from a fresh read of the kernel's table (GET /status and /metrics: counters and stats are current,
   * and the metrics' snapshot is taken from it). A read only: the model is left alone, and a cycle never waits for it.
   */
  async readStatus(): Promise<DirectorStatus> {
    const seq = ++this.#reads;
    const table = await this.#o.driver.listServices();
    // Reads that overlap (two scrapes at once) may end out of order: an older one would take the counters back.
    if (seq > this.#metricsRead) {
      this.#metricsRead = seq;
      this.metrics.update({ table, services: this.#services, health: this.#health.snapshot() });
    }
    return this.#statusOf(table);
  }

  /**
   * Brings the metrics up to date for a scrape (GET /metrics): a fresh read of the table and the VRRP pair's state.
   * Never throws: a failed table read is reported by the metrics themselves (tiergate_director_table_read_ok 0,
   * tiergate_director_table_read_errors_total), so the scrape succeeds and an alert sees the cause, not `up == 0`.
   */
  async refreshMetrics(): Promise<void> {
    const read = this.readStatus().then(
      () => undefined,
      (err: unknown) => {
        this.#log.warn({ err }, 'reading the IPVS table for /metrics failed; its series are absent from this scrape');
        this.metrics.tableReadFailed({ services: this.#services, health: this.#health.snapshot() }, isTgError(err) ? err.code : 'unknown');
      },
    );
    await Promise.all([read, this.metrics.refreshHa()]);
  }

  #statusOf(table: readonly IpvsServiceEntry[]): DirectorStatus {
    return buildStatus(this.#o.name, table, {
      managed: this.#managed,
      health: this.#health.snapshot(),
      draining: this.#draining,
      cycles: this.#cycles,
      lastCycle: this.#last,
      held: this.#held,
    });
  }

  /** Stops the loop and the health checks and waits for a cycle in progress. The IPVS table is left as it is. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const wake of this.#wake) wake();
    await this.#running;
    await Promise.allSettled([...this.#watchers.values()]);
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
  return { planned: details.applied.length + details.failed.length + details.notAttempted.length, applied: details.applied.length };
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
    /** Keys of the services tiergate manages (a set, or the config's index by key). */
    managed: Pick<ReadonlySet<string>, 'has'>;
    health: ReadonlyMap<string, boolean>;
    draining: ReadonlyMap<string, number>;
    cycles: number;
    lastCycle: DirectorStatus['lastCycle'];
    held?: ReadonlyMap<string, HeldServer>;
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
  const held = [...(ctx.held ?? [])].map(([key, h]): HeldStatus => {
    const [service = '', server = ''] = key.split(' ');
    return { service, server, phase: h.phase, after: h.after, since: h.since, timeoutMs: h.timeoutMs };
  });
  return { director: name, cycles: ctx.cycles, lastCycle: ctx.lastCycle, services, ...(held.length > 0 ? { held } : {}) };
}

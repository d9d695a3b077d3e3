import { channel } from 'node:diagnostics_channel';
import { createChecker } from './checkers.ts';
import { errorDetail } from './deadline.ts';
import { initialRiseFall, type RiseFallState, stepRiseFall } from './rise-fall.ts';
import { type CheckTiming, type HealthCheckSpec, resolveTiming } from './spec.ts';
import type { Checker, CheckResult, CheckTarget } from './types.ts';

/** diagnostics_channel name: every up/down change, message `HealthChange`. */
export const TRANSITION_CHANNEL = 'tiergate:health:transition';
/** diagnostics_channel name: every completed check, message `CheckEvent` (for metrics). */
export const CHECK_CHANNEL = 'tiergate:health:check';

const transitionChannel = channel(TRANSITION_CHANNEL);
const checkChannel = channel(CHECK_CHANNEL);

/** One change of a target's health. */
export interface HealthChange {
  /** The monitor's name (e.g. the pool or virtual service), to tell monitors apart on the channel. */
  readonly monitor: string;
  readonly target: CheckTarget;
  readonly healthy: boolean;
  readonly previous: boolean;
  /** The check result that completed the rise or fall streak. */
  readonly result: CheckResult;
  /** `now()` when it changed (ms since the epoch by default). */
  readonly at: number;
}

/** One completed check, as `onCheck` and CHECK_CHANNEL see it. */
export interface CheckEvent {
  readonly monitor: string;
  readonly target: CheckTarget;
  readonly result: CheckResult;
}

/** What /status endpoints show for one target. */
export interface TargetHealth {
  readonly target: CheckTarget;
  readonly healthy: boolean;
  readonly consecutiveSuccesses: number;
  readonly consecutiveFailures: number;
  readonly lastResult: CheckResult | null;
  /** `now()` of the last transition; null while the target is still in its initial state. */
  readonly lastChangeAt: number | null;
  readonly checks: number;
  readonly failures: number;
}

export interface HealthMonitorOptions {
  /** What to probe and when; timing fields left out take DEFAULT_TIMING. `port` replaces each target's port. */
  readonly spec: HealthCheckSpec & { readonly port?: number };
  /** Defaults to `createChecker(spec)`, which the monitor then closes on stop(); an injected one is the caller's. */
  readonly checker?: Checker;
  readonly targets?: readonly CheckTarget[];
  readonly onChange?: (change: HealthChange) => void;
  /** Every completed check (e.g. to follow a misc_dynamic `weight` that changes without a transition). */
  readonly onCheck?: (check: CheckEvent) => void;
  readonly name?: string;
  /** Uniform in [0, 1); drives the interval jitter. */
  readonly random?: () => number;
  /** Timestamps for `at` / `lastChangeAt` only; scheduling uses real timers. */
  readonly now?: () => number;
}

interface Entry {
  readonly target: CheckTarget;
  readonly key: string;
  readonly abort: AbortController;
  state: RiseFallState;
  timer: NodeJS.Timeout | null;
  inFlight: Promise<void> | null;
  removed: boolean;
  lastResult: CheckResult | null;
  lastChangeAt: number | null;
  checks: number;
  failures: number;
}

/** The identity of a target inside a monitor: `host:port` (IPv6 in brackets). */
export function targetKey(t: CheckTarget): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** The wait before the next check: `intervalMs` scaled by a factor uniform in [1 - jitter, 1 + jitter). */
export function jitteredDelay(intervalMs: number, jitter: number, random: number): number {
  return Math.max(0, Math.round(intervalMs * (1 + jitter * (2 * random - 1))));
}

/**
 * Checks a set of targets on their own schedules and turns results into up/down through the rise/fall
 * state machine. Each target's next check is scheduled when its previous one ends, so one target never
 * has two checks at once. Transitions go to `onChange` and to the TRANSITION_CHANNEL diagnostics channel.
 * Lifecycle: construct, `start()`, `setTargets()` any number of times, `stop()` (final; also `await using`).
 */
export class HealthMonitor implements AsyncDisposable {
  readonly name: string;
  readonly timing: CheckTiming;
  readonly #spec: HealthMonitorOptions['spec'];
  readonly #checker: Checker;
  readonly #ownsChecker: boolean;
  readonly #onChange: ((change: HealthChange) => void) | undefined;
  readonly #onCheck: ((check: CheckEvent) => void) | undefined;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  /** Checks of removed targets still finishing; a re-added target waits for its old check first. */
  readonly #retiring = new Map<string, Promise<void>>();
  #phase: 'new' | 'running' | 'stopped' = 'new';
  #stopped: Promise<void> | null = null;

  constructor(options: HealthMonitorOptions) {
    this.timing = resolveTiming(options.spec);
    this.#spec = options.spec;
    this.#checker = options.checker ?? createChecker(options.spec);
    this.#ownsChecker = options.checker === undefined;
    this.#onChange = options.onChange;
    this.#onCheck = options.onCheck;
    this.name = options.name ?? '';
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.setTargets(options.targets ?? []);
  }

  /** Checks every target now, then on its interval. */
  start(): void {
    if (this.#phase === 'stopped') throw new Error('HealthMonitor: start() after stop()');
    if (this.#phase === 'running') return;
    this.#phase = 'running';
    for (const entry of this.#entries.values()) this.#kick(entry);
  }

  /**
   * Replaces the set of targets (hot reload). Kept targets keep their state and schedule; new ones start
   * in the `initial` state and, when running, are checked at once; removed ones are aborted and forgotten.
   */
  setTargets(targets: readonly CheckTarget[]): void {
    const wanted = new Map(targets.map((t) => [targetKey(t), t]));
    for (const [key, entry] of this.#entries) if (!wanted.has(key)) this.#remove(entry);
    for (const [key, target] of wanted) {
      if (this.#entries.has(key)) continue;
      const entry = this.#newEntry(key, { host: target.host, port: target.port });
      this.#entries.set(key, entry);
      if (this.#phase === 'running') this.#kick(entry);
    }
  }

  /** The health of every target, in insertion order. */
  status(): TargetHealth[] {
    return [...this.#entries.values()].map((e) => ({
      target: e.target,
      healthy: e.state.healthy,
      consecutiveSuccesses: e.state.successes,
      consecutiveFailures: e.state.failures,
      lastResult: e.lastResult,
      lastChangeAt: e.lastChangeAt,
      checks: e.checks,
      failures: e.failures,
    }));
  }

  /** Whether a target is currently healthy; undefined for a target this monitor does not check. */
  isHealthy(target: CheckTarget): boolean | undefined {
    return this.#entries.get(targetKey(target))?.state.healthy;
  }

  /**
   * Stops scheduling, aborts and awaits checks in flight, clears every timer, closes an owned checker.
   * Every call returns the same promise, so `stop()` inside an `await using` scope waits in both places.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    this.#phase = 'stopped';
    const pending = [...this.#retiring.values()];
    for (const entry of this.#entries.values()) {
      this.#halt(entry);
      if (entry.inFlight) pending.push(entry.inFlight);
    }
    await Promise.all(pending);
    if (this.#ownsChecker) await this.#checker.close?.();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #newEntry(key: string, target: CheckTarget): Entry {
    const state = initialRiseFall(this.timing.initial);
    return {
      target,
      key,
      abort: new AbortController(),
      state,
      timer: null,
      inFlight: null,
      removed: false,
      lastResult: null,
      lastChangeAt: null,
      checks: 0,
      failures: 0,
    };
  }

  /** First check of a target: now, or as soon as the check of its removed predecessor has ended. */
  #kick(entry: Entry): void {
    const old = this.#retiring.get(entry.key);
    if (old) void old.then(() => this.#run(entry));
    else this.#run(entry);
  }

  #remove(entry: Entry): void {
    entry.removed = true;
    this.#entries.delete(entry.key);
    this.#halt(entry);
    const p = entry.inFlight;
    if (p) {
      this.#retiring.set(entry.key, p);
      void p.then(() => {
        if (this.#retiring.get(entry.key) === p) this.#retiring.delete(entry.key);
      });
    }
  }

  #halt(entry: Entry): void {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = null;
    entry.abort.abort();
  }

  #live(entry: Entry): boolean {
    return this.#phase === 'running' && !entry.removed;
  }

  #run(entry: Entry): void {
    if (!this.#live(entry) || entry.inFlight) return;
    entry.inFlight = this.#probe(entry).then((result) => {
      entry.inFlight = null;
      if (!this.#live(entry)) return;
      const delay = jitteredDelay(this.timing.intervalMs, this.timing.jitter, this.#random());
      entry.timer = setTimeout(() => {
        entry.timer = null;
        this.#run(entry);
      }, delay);
      this.#record(entry, result);
    });
  }

  async #probe(entry: Entry): Promise<CheckResult> {
    const target = this.#spec.port === undefined ? entry.target : { host: entry.target.host, port: this.#spec.port };
    try {
      return await this.#checker.check(target, this.timing.timeoutMs, entry.abort.signal);
    } catch (err) {
      // Checkers must resolve; an injected one that rejects still counts as a failed check, not a dead loop.
      return { ok: false, detail: errorDetail(err), durationMs: 0 };
    }
  }

  #record(entry: Entry, result: CheckResult): void {
    entry.checks += 1;
    if (!result.ok) entry.failures += 1;
    entry.lastResult = result;
    const { state, transition } = stepRiseFall(entry.state, result.ok, this.timing);
    entry.state = state;
    const check: CheckEvent = { monitor: this.name, target: entry.target, result };
    if (checkChannel.hasSubscribers) checkChannel.publish(check);
    if (transition) {
      entry.lastChangeAt = this.#now();
      const change: HealthChange = { monitor: this.name, target: entry.target, ...transition, result, at: entry.lastChangeAt };
      if (transitionChannel.hasSubscribers) transitionChannel.publish(change);
      notify(this.#onChange, change);
    }
    notify(this.#onCheck, check);
  }
}

/**
 * Calls a listener. A throwing listener is the caller's bug: it surfaces as an uncaught exception (as with
 * EventEmitter) without breaking the monitor's schedule, which is already set when listeners run.
 */
function notify<T>(listener: ((arg: T) => void) | undefined, arg: T): void {
  if (!listener) return;
  try {
    listener(arg);
  } catch (err) {
    process.nextTick(() => {
      throw err;
    });
  }
}

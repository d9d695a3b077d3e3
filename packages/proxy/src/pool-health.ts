import type { DeepReadonly, PoolConfig } from '@tiergate/config';
import { splitHostPort } from '@tiergate/config/runtime';
import { type CheckEvent, type HealthChange, HealthMonitor, type TargetHealth, type TlsFiles, targetKey } from '@tiergate/health';
import { healthSpecOf } from './health-spec.ts';

/** A pool's `health_check` section. */
export type HealthCheckSection = DeepReadonly<NonNullable<PoolConfig['health_check']>>;

/** Told of every change of a server's effective verdict (key: `host:port`). */
export type VerdictListener = (key: string, healthy: boolean) => void;

/**
 * The active health of one pool's servers, shared by the pool generations a reload creates while its
 * `health_check` stays the same (so kept servers keep their rise/fall streaks and schedule).
 *
 * The effective verdict is the monitor's, except for a server added by a reload: it is *pending*
 * (unhealthy) until its first check passes, so a new server takes no traffic unchecked. Servers of the
 * first configuration start healthy (HAProxy's and the monitor's default: `fall` failures take them out).
 */
export class PoolHealth {
  readonly check: HealthCheckSection;
  /** What decides, with `check`, whether a reload keeps this monitor: the pool's TLS settings (UpstreamProtocol.key). */
  readonly tlsKey: string;
  /** Pool generations using it; the last one to let go stops the monitor. */
  holders = 0;
  readonly #monitor: HealthMonitor;
  readonly #verdicts = new Map<string, boolean>();
  readonly #pending = new Set<string>();
  /** Targets checked at least once since they were added. */
  readonly #checked = new Set<string>();
  readonly #listeners = new Set<VerdictListener>();
  readonly #waiters = new Set<() => void>();
  #started = false;

  constructor(pool: string, check: HealthCheckSection, random: () => number, tls?: { key: string; files: TlsFiles | undefined }) {
    this.check = check;
    this.tlsKey = tls?.key ?? '';
    this.#monitor = new HealthMonitor({
      spec: healthSpecOf(check, tls?.files),
      name: pool,
      random,
      onChange: (c) => this.#onChange(c),
      onCheck: (c) => this.#onCheck(c),
    });
  }

  /**
   * Sets the servers to check. New ones get `seed(key)` as their verdict (undefined = pending);
   * kept ones keep theirs; removed ones are forgotten.
   */
  setTargets(addresses: readonly string[], seed: (key: string) => boolean | undefined): void {
    const targets = addresses.map((a) => splitHostPort(a)!);
    const keys = new Set(targets.map(targetKey));
    for (const key of this.#verdicts.keys()) {
      if (keys.has(key)) continue;
      this.#verdicts.delete(key);
      this.#pending.delete(key);
      this.#checked.delete(key);
    }
    for (const key of keys) {
      if (this.#verdicts.has(key)) continue;
      const healthy = seed(key);
      this.#verdicts.set(key, healthy ?? false);
      if (healthy !== true) this.#pending.add(key);
    }
    this.#monitor.setTargets(targets);
  }

  /** The effective verdict of `host:port`; true for a server this monitor does not check. */
  healthy(key: string): boolean {
    return this.#verdicts.get(key) ?? true;
  }

  /** Whether the verdict is known (not pending a first check). */
  known(key: string): boolean {
    return this.#verdicts.has(key) && !this.#pending.has(key);
  }

  subscribe(listener: VerdictListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#monitor.start();
  }

  /** Resolves once each of `keys` has been checked at least once, or after `timeoutMs`. */
  async firstChecks(keys: readonly string[], timeoutMs: number): Promise<void> {
    if (keys.every((k) => this.#checked.has(k))) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const check = () => {
        if (keys.every((k) => this.#checked.has(k) || !this.#verdicts.has(k))) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#waiters.add(check);
    });
  }

  status(): TargetHealth[] {
    return this.#monitor.status();
  }

  stop(): Promise<void> {
    for (const w of this.#waiters) w();
    return this.#monitor.stop();
  }

  #onCheck(c: CheckEvent): void {
    const key = targetKey(c.target);
    this.#checked.add(key);
    if (this.#pending.has(key) && c.result.ok && this.#monitor.isHealthy(c.target)) {
      this.#pending.delete(key);
      this.#set(key, true);
    }
    for (const w of [...this.#waiters]) w();
  }

  #onChange(c: HealthChange): void {
    const key = targetKey(c.target);
    this.#pending.delete(key);
    this.#set(key, c.healthy);
  }

  #set(key: string, healthy: boolean): void {
    if (!this.#verdicts.has(key) || this.#verdicts.get(key) === healthy) return;
    this.#verdicts.set(key, healthy);
    for (const l of this.#listeners) l(key, healthy);
  }
}

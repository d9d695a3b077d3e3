import type { DeepReadonly, L4HealthCheckConfig } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import {
  type CheckEvent,
  type HealthChange,
  type HealthCheckSpec,
  HealthMonitor,
  type StatusRange,
  type TargetHealth,
} from '@tiergate/health';
import { destKey, serviceKey } from '@tiergate/ipvs';
import { sameService } from './config-diff.ts';
import { configuredKeys, destPortOf, type HealthSnapshot, healthKey, serviceIdOfConfig, type VirtualService } from './desired.ts';

/** A config health check in @tiergate/health terms (durations are ms in both). */
export function checkSpecOf(hc: DeepReadonly<L4HealthCheckConfig>): HealthCheckSpec {
  // health wants jitter < 1; the schema allows 1 (= "up to one whole interval").
  const timing = {
    intervalMs: hc.interval,
    timeoutMs: hc.timeout,
    rise: hc.rise,
    fall: hc.fall,
    jitter: Math.min(hc.jitter, 0.99),
    initial: 'up' as const,
  };
  switch (hc.type) {
    case 'tcp':
      return { kind: 'tcp', ...timing };
    case 'command':
      return { kind: 'command', argv: [...hc.command], ...(hc.user === undefined ? {} : { user: hc.user }), ...timing };
    default:
      return {
        kind: hc.type,
        path: hc.path,
        ...(hc.host === undefined ? {} : { host: hc.host }),
        expectStatus: hc.expect_status.map(statusRange),
        ...(hc.body_match === undefined ? {} : { bodyMatch: hc.body_match }),
        rejectUnauthorized: hc.tls_verify,
        ...timing,
      };
  }
}

function statusRange(s: number | string): StatusRange {
  if (typeof s === 'number') return [s, s];
  return [Number(s.slice(0, 3)), Number(s.slice(4))];
}

type Targets = Map<string, { host: string; port: number }>;

interface Watched {
  readonly monitor: HealthMonitor;
  /** healthKey → the probed target. */
  targets: Targets;
  /** `host:port` of a probed target → its healthKey (how the monitor's events are told apart). */
  byTarget: Map<string, string>;
  /**
   * Real servers down until their first passing check, whatever the monitor's own state: those a reload added
   * (or whose check changed while they were not known healthy). keepalived and the proxy's PoolHealth do the same:
   * a server no check has passed yet takes no traffic.
   */
  readonly pending: Set<string>;
  /** The check, as text: a reload keeps the monitor (and its servers' health) when this is unchanged. */
  readonly fingerprint: string;
  /** The service as configured: an equal one in a reload has the same check and targets (nothing to derive again). */
  vs: VirtualService;
}

/** One real server's health as /status shows it. */
export interface RealServerHealthStatus {
  readonly key: string;
  readonly healthy: boolean;
  readonly target: string;
  readonly lastCheck: string | null;
}

const targetText = (t: { host: string; port: number }) => `${t.host}:${t.port}`;

/**
 * One HealthMonitor per virtual service with a health_check, probing each real server at its own address on
 * `check.port ?? real server port ?? service port` (DR real servers cannot be checked through the VIP: the
 * director owns it). Sorry servers are not checked.
 *
 * Real servers of the first config start healthy (keepalived's and HAProxy's default: `fall` failures take one
 * out). Across reloads a server's health carries over: a server kept keeps its state (also when the service's
 * other servers change), and a server new to the config is down until its first passing check, so a reload
 * neither brings a failed server back nor sends traffic to an unchecked one.
 */
export class RealServerHealth {
  /** By service key. */
  readonly #watched = new Map<string, Watched>();
  readonly #onChange: (key: string, change: HealthChange) => void;
  readonly #random: () => number;
  /** The config of the last update (null before the first). */
  #services: readonly VirtualService[] | null = null;
  #started = false;

  constructor(
    services: readonly VirtualService[],
    onChange: (key: string, change: HealthChange) => void,
    random: () => number = Math.random,
  ) {
    this.#onChange = onChange;
    this.#random = random;
    this.update(services);
  }

  /**
   * Follows a new config. A service whose check is unchanged keeps its monitor: kept servers keep their health,
   * added ones are down until their first passing check, removed ones are forgotten. A service whose check
   * changed gets a fresh monitor: a server known healthy stays up until the new check says otherwise, the others
   * wait for a first pass. A service that gained a check keeps the servers it had up. A removed one's monitor
   * stops. Returns the service keys whose monitor or servers changed. Throws TG_CONFIG_INVALID (nothing
   * changed) when a check has no port to probe.
   */
  update(services: readonly VirtualService[]): Set<string> {
    const next = new Map<string, { vs: VirtualService; targets: Targets; fingerprint: string }>();
    // Every service of a reload passes here, most without a check: an index loop, no iterator.
    for (let i = 0; i < services.length; i++) {
      const vs = services[i] as VirtualService;
      const hc = vs.health_check;
      if (!hc) continue;
      const svcKey = serviceKey(serviceIdOfConfig(vs));
      const same = this.#watched.get(svcKey);
      if (same !== undefined && sameService(same.vs, vs)) {
        next.set(svcKey, { vs, targets: same.targets, fingerprint: same.fingerprint });
        continue;
      }
      next.set(svcKey, { vs, targets: targetsOf(vs, svcKey), fingerprint: JSON.stringify(hc) });
    }
    const seed = this.#seeder(services);
    const changed = new Set<string>();
    for (const [svcKey, w] of this.#watched) {
      if (next.get(svcKey)?.fingerprint === w.fingerprint) continue;
      void w.monitor.stop();
      this.#watched.delete(svcKey);
      changed.add(svcKey);
    }
    for (const [svcKey, n] of next) {
      const kept = this.#watched.get(svcKey);
      if (kept) {
        if (this.#retarget(kept, n.targets, seed)) changed.add(svcKey);
        kept.vs = n.vs;
        continue;
      }
      const w = this.#watch(svcKey, n.vs, n.targets, n.fingerprint);
      for (const key of n.targets.keys()) if (!seed(key)) w.pending.add(key);
      this.#watched.set(svcKey, w);
      if (this.#started) w.monitor.start();
      changed.add(svcKey);
    }
    return changed;
  }

  /**
   * Whether a real server new to a monitor starts up (else it waits for its first passing check): on the first
   * config, yes; later, if the monitor it leaves knew it healthy, or if it was configured before without a check.
   * Called before update() changes anything.
   */
  #seeder(services: readonly VirtualService[]): (key: string) => boolean {
    const before = this.#services;
    this.#services = services;
    if (before === null) return () => true;
    const previous = [...this.#watched.values()];
    // Built on first use: a reload that adds no server (most of them) pays for neither index.
    let checked: Map<string, Watched> | undefined;
    let configured: Set<string> | undefined;
    return (key) => {
      if (checked === undefined) {
        checked = new Map();
        for (const w of previous) for (const k of w.targets.keys()) checked.set(k, w);
      }
      const w = checked.get(key);
      if (w === undefined) {
        configured ??= configuredKeys(before);
        return configured.has(key);
      }
      const t = w.targets.get(key);
      return !w.pending.has(key) && t !== undefined && w.monitor.isHealthy(t) !== false;
    };
  }

  /** Gives a kept monitor the new real servers; returns whether they changed. */
  #retarget(w: Watched, targets: Targets, seed: (key: string) => boolean): boolean {
    if (w.targets === targets || sameTargets(w.targets, targets)) return false;
    for (const key of w.pending) if (!targets.has(key)) w.pending.delete(key);
    for (const key of targets.keys()) if (!w.targets.has(key) && !seed(key)) w.pending.add(key);
    w.targets = targets;
    w.byTarget = byTargetOf(targets);
    w.monitor.setTargets([...targets.values()]);
    return true;
  }

  #watch(svcKey: string, vs: VirtualService, targets: Targets, fingerprint: string): Watched {
    // Set right below: the monitor calls back only once started, never from its constructor.
    let w: Watched;
    const monitor = new HealthMonitor({
      spec: checkSpecOf(vs.health_check as DeepReadonly<L4HealthCheckConfig>),
      targets: [...targets.values()],
      name: svcKey,
      random: this.#random,
      onChange: (change) => {
        const key = w.byTarget.get(targetText(change.target)) ?? '';
        w.pending.delete(key);
        this.#onChange(key, change);
      },
      onCheck: (check) => this.#firstPass(w, check),
    });
    w = { monitor, targets, byTarget: byTargetOf(targets), pending: new Set(), fingerprint, vs };
    return w;
  }

  /** A pending server's first passing check (with the monitor agreeing it is up) brings it up. */
  #firstPass(w: Watched, check: CheckEvent): void {
    if (w.pending.size === 0 || !check.result.ok || w.monitor.isHealthy(check.target) !== true) return;
    const key = w.byTarget.get(targetText(check.target));
    if (key === undefined || !w.pending.delete(key)) return;
    this.#onChange(key, {
      monitor: check.monitor,
      target: check.target,
      healthy: true,
      previous: false,
      result: check.result,
      at: Date.now(),
    });
  }

  start(): void {
    this.#started = true;
    for (const w of this.#watched.values()) w.monitor.start();
  }

  /** Current health of the checked real servers (of the services `only` names, or of all); unchecked ones are absent = healthy. */
  snapshot(only?: Iterable<string>): HealthSnapshot {
    const out = new Map<string, boolean>();
    const watched = only === undefined ? this.#watched.values() : [...only].flatMap((k) => this.#watched.get(k) ?? []);
    for (const w of watched) for (const [key, t] of w.targets) out.set(key, !w.pending.has(key) && (w.monitor.isHealthy(t) ?? true));
    return out;
  }

  status(): RealServerHealthStatus[] {
    return [...this.#watched.values()].flatMap((w) => {
      const byTarget = new Map<string, TargetHealth>(w.monitor.status().map((s) => [targetText(s.target), s]));
      return [...w.targets].map(([key, t]) => {
        const s = byTarget.get(targetText(t));
        return {
          key,
          healthy: !w.pending.has(key) && (s?.healthy ?? true),
          target: targetText(t),
          lastCheck: s?.lastResult?.detail ?? null,
        };
      });
    });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#watched.values()].map((w) => w.monitor.stop()));
  }
}

function byTargetOf(targets: Targets): Map<string, string> {
  return new Map([...targets].map(([k, t]) => [targetText(t), k]));
}

function sameTargets(a: Targets, b: Targets): boolean {
  if (a.size !== b.size) return false;
  for (const [key, t] of a) {
    const u = b.get(key);
    if (u === undefined || u.host !== t.host || u.port !== t.port) return false;
  }
  return true;
}

/** healthKey → probed target of each real server of a checked service. */
function targetsOf(vs: VirtualService, svcKey: string): Targets {
  const targets: Targets = new Map();
  for (const rs of vs.real_servers) {
    const port = vs.health_check?.port ?? rs.port ?? vs.port;
    if (port === undefined || port === 0)
      throw new TgError(
        'TG_CONFIG_INVALID',
        `virtual service ${svcKey}: health_check of ${rs.address} needs a port (set health_check.port)`,
      );
    targets.set(healthKey(svcKey, destKey({ address: rs.address, port: destPortOf(vs, rs.port) })), { host: rs.address, port });
  }
  return targets;
}

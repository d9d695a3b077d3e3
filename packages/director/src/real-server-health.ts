import type { DeepReadonly, L4HealthCheckConfig } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import { type HealthChange, type HealthCheckSpec, HealthMonitor, type StatusRange, type TargetHealth } from '@tiergate/health';
import { destKey, serviceKey } from '@tiergate/ipvs';
import { sameService } from './config-diff.ts';
import { destPortOf, type HealthSnapshot, healthKey, serviceIdOfConfig, type VirtualService } from './desired.ts';

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
      return { kind: 'command', argv: [...hc.command], ...timing };
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

interface Watched {
  readonly monitor: HealthMonitor;
  /** healthKey → the probed target. */
  readonly targets: Map<string, { host: string; port: number }>;
  /** The check and its targets, as text: a reload keeps the monitor (and its health) when this is unchanged. */
  readonly fingerprint: string;
  /** The service as configured: an equal one in a reload has the same fingerprint (nothing to derive again). */
  readonly vs: VirtualService;
}

/** One real server's health as /status shows it. */
export interface RealServerHealthStatus {
  readonly key: string;
  readonly healthy: boolean;
  readonly target: string;
  readonly lastCheck: string | null;
}

/**
 * One HealthMonitor per virtual service with a health_check, probing each real server at its own address on
 * `check.port ?? real server port ?? service port` (DR real servers cannot be checked through the VIP: the
 * director owns it). Sorry servers are not checked.
 */
export class RealServerHealth {
  /** By service key. */
  readonly #watched = new Map<string, Watched>();
  readonly #onChange: (key: string, change: HealthChange) => void;
  readonly #random: () => number;
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
   * Follows a new config: a service whose check and real servers are unchanged keeps its monitor and its
   * servers' health (a reload must not bring a failed server back); a new or changed one gets a fresh
   * monitor (servers start healthy); a removed one's monitor stops. Returns the service keys whose
   * monitor changed. Throws TG_CONFIG_INVALID (nothing changed) when a check has no port to probe.
   */
  update(services: readonly VirtualService[]): Set<string> {
    const next = new Map<string, { vs: VirtualService; targets: Map<string, { host: string; port: number }>; fingerprint: string }>();
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
      const targets = targetsOf(vs, svcKey);
      next.set(svcKey, { vs, targets, fingerprint: JSON.stringify([hc, [...targets]]) });
    }
    const changed = new Set<string>();
    for (const [svcKey, w] of this.#watched) {
      if (next.get(svcKey)?.fingerprint === w.fingerprint) continue;
      void w.monitor.stop();
      this.#watched.delete(svcKey);
      changed.add(svcKey);
    }
    for (const [svcKey, n] of next) {
      if (this.#watched.has(svcKey)) continue;
      const w = this.#watch(svcKey, n.vs, n.targets, n.fingerprint);
      this.#watched.set(svcKey, w);
      if (this.#started) w.monitor.start();
      changed.add(svcKey);
    }
    return changed;
  }

  #watch(svcKey: string, vs: VirtualService, targets: Map<string, { host: string; port: number }>, fingerprint: string): Watched {
    const byTarget = new Map([...targets].map(([k, t]) => [`${t.host}:${t.port}`, k]));
    const monitor = new HealthMonitor({
      spec: checkSpecOf(vs.health_check as DeepReadonly<L4HealthCheckConfig>),
      targets: [...targets.values()],
      name: svcKey,
      random: this.#random,
      onChange: (change) => this.#onChange(byTarget.get(`${change.target.host}:${change.target.port}`) ?? '', change),
    });
    return { monitor, targets, fingerprint, vs };
  }

  start(): void {
    this.#started = true;
    for (const w of this.#watched.values()) w.monitor.start();
  }

  /** Current health of the checked real servers (of the services `only` names, or of all); unchecked ones are absent = healthy. */
  snapshot(only?: Iterable<string>): HealthSnapshot {
    const out = new Map<string, boolean>();
    const watched = only === undefined ? this.#watched.values() : [...only].flatMap((k) => this.#watched.get(k) ?? []);
    for (const w of watched) for (const [key, t] of w.targets) out.set(key, w.monitor.isHealthy(t) ?? true);
    return out;
  }

  status(): RealServerHealthStatus[] {
    return [...this.#watched.values()].flatMap((w) => {
      const byTarget = new Map<string, TargetHealth>(w.monitor.status().map((s) => [`${s.target.host}:${s.target.port}`, s]));
      return [...w.targets].map(([key, t]) => {
        const s = byTarget.get(`${t.host}:${t.port}`);
        return { key, healthy: s?.healthy ?? true, target: `${t.host}:${t.port}`, lastCheck: s?.lastResult?.detail ?? null };
      });
    });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#watched.values()].map((w) => w.monitor.stop()));
  }
}

/** healthKey → probed target of each real server of a checked service. */
function targetsOf(vs: VirtualService, svcKey: string): Map<string, { host: string; port: number }> {
  const targets = new Map<string, { host: string; port: number }>();
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

import type { DeepReadonly, L4HealthCheckConfig } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import { type HealthChange, type HealthCheckSpec, HealthMonitor, type StatusRange, type TargetHealth } from '@tiergate/health';
import { destKey, serviceKey } from '@tiergate/ipvs';
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
  readonly #watched: Watched[] = [];

  constructor(
    services: readonly VirtualService[],
    onChange: (key: string, change: HealthChange) => void,
    random: () => number = Math.random,
  ) {
    for (const vs of services) {
      const hc = vs.health_check;
      if (!hc) continue;
      const svcKey = serviceKey(serviceIdOfConfig(vs));
      const targets = new Map<string, { host: string; port: number }>();
      for (const rs of vs.real_servers) {
        const port = hc.port ?? rs.port ?? vs.port;
        if (port === undefined || port === 0)
          throw new TgError(
            'TG_CONFIG_INVALID',
            `virtual service ${svcKey}: health_check of ${rs.address} needs a port (set health_check.port)`,
          );
        targets.set(healthKey(svcKey, destKey({ address: rs.address, port: destPortOf(vs, rs.port) })), { host: rs.address, port });
      }
      const byTarget = new Map([...targets].map(([k, t]) => [`${t.host}:${t.port}`, k]));
      const monitor = new HealthMonitor({
        spec: checkSpecOf(hc),
        targets: [...targets.values()],
        name: svcKey,
        random,
        onChange: (change) => onChange(byTarget.get(`${change.target.host}:${change.target.port}`) ?? '', change),
      });
      this.#watched.push({ monitor, targets });
    }
  }

  start(): void {
    for (const w of this.#watched) w.monitor.start();
  }

  /** Current health of every checked real server (unchecked ones are absent = healthy). */
  snapshot(): HealthSnapshot {
    const out = new Map<string, boolean>();
    for (const w of this.#watched) for (const [key, t] of w.targets) out.set(key, w.monitor.isHealthy(t) ?? true);
    return out;
  }

  status(): RealServerHealthStatus[] {
    return this.#watched.flatMap((w) => {
      const byTarget = new Map<string, TargetHealth>(w.monitor.status().map((s) => [`${s.target.host}:${s.target.port}`, s]));
      return [...w.targets].map(([key, t]) => {
        const s = byTarget.get(`${t.host}:${t.port}`);
        return { key, healthy: s?.healthy ?? true, target: `${t.host}:${t.port}`, lastCheck: s?.lastResult?.detail ?? null };
      });
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.#watched.map((w) => w.monitor.stop()));
  }
}

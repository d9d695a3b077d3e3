import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The director's Prometheus metrics, in their own registry (served on the admin listener at /metrics). */
export class DirectorMetrics {
  readonly registry = new Registry();
  readonly cycles = new Counter({
    name: 'tiergate_director_reconcile_total',
    help: 'Reconcile cycles, by result (ok, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly cycleSeconds = new Histogram({
    name: 'tiergate_director_reconcile_duration_seconds',
    help: 'Time of one reconcile cycle (read, plan, apply).',
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10],
    registers: [this.registry],
  });
  readonly ops = new Counter({
    name: 'tiergate_director_ops_total',
    help: 'IPVS writes applied, by kind (add-service, update-dest, ...).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly transitions = new Counter({
    name: 'tiergate_director_health_transitions_total',
    help: 'Real-server health changes, by service and new state (up, down).',
    labelNames: ['service', 'state'] as const,
    registers: [this.registry],
  });
  readonly healthy = new Gauge({
    name: 'tiergate_director_realserver_healthy',
    help: '1 when the real server passes its health check.',
    labelNames: ['service', 'server'] as const,
    registers: [this.registry],
  });
  readonly weight = new Gauge({
    name: 'tiergate_director_realserver_weight',
    help: 'The weight the kernel holds for the real server.',
    labelNames: ['service', 'server'] as const,
    registers: [this.registry],
  });
  readonly activeConns = new Gauge({
    name: 'tiergate_director_realserver_active_connections',
    help: 'Active connections IPVS counts for the real server.',
    labelNames: ['service', 'server'] as const,
    registers: [this.registry],
  });
}

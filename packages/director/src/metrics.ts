import { readFileSync } from 'node:fs';
import { canonicalAddress, destKey, type IpvsServiceEntry, type IpvsStats, serviceKey } from '@tiergate/ipvs';
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Metric, Registry } from 'prom-client';
import { destPortOf, healthKey, serviceIdOfConfig, type VirtualService } from './desired.ts';
import type { Op } from './plan.ts';
import type { CycleKind } from './reconciler.ts';
import type { HaStatus } from './sync-role.ts';

/** The director package's version: tiergate's packages are versioned together. */
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * prom-client's default metrics of this process (process_*, nodejs_*), made once per process and shared by every
 * DirectorMetrics: collectDefaultMetrics starts an event-loop-delay monitor and a GC observer that nothing can stop,
 * so one per DirectorMetrics (tests make many) would pile them up. The director is one process: no `worker` label.
 */
let processRegistry: Registry | undefined;
/** Gauges prom-client names `*_total`, a suffix Prometheus reserves for counters (promtool refuses them); the per-type ones stay. */
const UNLINTABLE_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    for (const name of UNLINTABLE_DEFAULT_METRICS) processRegistry.removeSingleMetric(name);
  }
  return processRegistry;
}

/** What the per-service and per-real-server metrics are computed from (see DirectorMetrics.update). */
export interface DirectorMetricsSnapshot {
  /** The kernel's table as read (services with destinations, counters and stats). */
  readonly table: readonly IpvsServiceEntry[];
  /** The configured virtual services: only these are exported (a foreign service in the table is not). */
  readonly services: readonly VirtualService[];
  /** Health of checked real servers, by healthKey (unchecked ones have no entry and no `healthy` series). */
  readonly health: ReadonlyMap<string, boolean>;
}

/** CycleKind (reconciler.ts) and the kinds of Op (plan.ts): the label values that exist from the start. */
const CYCLE_KINDS: readonly CycleKind[] = ['full', 'services', 'idle'];
const OP_KINDS: readonly Op['kind'][] = [
  'add-service',
  'update-service',
  'delete-service',
  'add-destination',
  'update-destination',
  'delete-destination',
];

/** keepalived's states (its notify script's argument): each has a series once a state is recorded. */
const VRRP_STATES = ['MASTER', 'BACKUP', 'FAULT', 'STOP'];

const SERVICE_LABELS = ['service', 'vip', 'port', 'protocol'] as const;
const SERVER_LABELS = [...SERVICE_LABELS, 'server'] as const;
type ServiceLabels = Record<(typeof SERVICE_LABELS)[number], string>;
type ServerLabels = Record<(typeof SERVER_LABELS)[number], string>;

/** The labels of one configured service: its config name (or key without one), VIP, port and protocol. */
export function serviceLabels(vs: VirtualService): ServiceLabels {
  const id = serviceIdOfConfig(vs);
  const service = vs.name ?? serviceKey(id);
  // A fwmark service has no VIP or port of its own: the firewall mark selects its traffic.
  if (id.fwmark !== undefined) return { service, vip: '', port: '', protocol: 'fwmark' };
  return { service, vip: canonicalAddress(id.address), port: String(id.port), protocol: id.protocol };
}

/** One series of the snapshot: its labels and the numbers its metrics take. */
interface Row<L> {
  readonly labels: L;
  readonly stats: IpvsStats | undefined;
}
interface ServerRow extends Row<ServerLabels> {
  readonly weight: number;
  readonly activeConns: number;
  readonly inactConns: number;
}
interface Rows {
  readonly services: Row<ServiceLabels>[];
  readonly servers: ServerRow[];
  readonly configuredWeights: { labels: ServerLabels; weight: number }[];
  readonly health: { labels: ServerLabels; healthy: boolean }[];
}
const NO_ROWS: Rows = { services: [], servers: [], configuredWeights: [], health: [] };

/** The series of a snapshot, computed once per update (each metric's collect() then only copies its numbers). */
function rowsOf(s: DirectorMetricsSnapshot): Rows {
  const byKey = new Map<string, { vs: VirtualService; labels: ServiceLabels }>();
  const rows: Rows = { services: [], servers: [], configuredWeights: [], health: [] };
  for (const vs of s.services) {
    const key = serviceKey(serviceIdOfConfig(vs));
    const labels = serviceLabels(vs);
    byKey.set(key, { vs, labels });
    for (const rs of vs.real_servers) {
      const server = destKey({ address: rs.address, port: destPortOf(vs, rs.port) });
      const serverLabels = { ...labels, server };
      rows.configuredWeights.push({ labels: serverLabels, weight: rs.weight });
      const healthy = s.health.get(healthKey(key, server));
      if (healthy !== undefined) rows.health.push({ labels: serverLabels, healthy });
    }
  }
  for (const e of s.table) {
    const svc = byKey.get(serviceKey(e.service));
    if (!svc) continue;
    rows.services.push({ labels: svc.labels, stats: e.service.stats });
    for (const d of e.destinations) {
      rows.servers.push({
        labels: { ...svc.labels, server: destKey(d) },
        stats: d.stats,
        weight: d.weight,
        activeConns: d.activeConns ?? 0,
        inactConns: d.inactConns ?? 0,
      });
    }
  }
  return rows;
}

/**
 * The director's Prometheus metrics, in their own registry (served on the admin listener at /metrics; names,
 * labels and their `ipvsadm` twins: docs/director.md#metrics). The reconcile loop and the health checks count
 * events as they happen; the IPVS table's numbers (connections, packets, bytes, weights) and health are computed
 * at collection from the snapshot of the last `update()` (the Director gives it one from each fresh read of the
 * table: every scrape reads it), so the `*_total` counters are the kernel's own cumulative counters (reset by
 * `ipvsadm -Z` or by deleting and re-adding a service, which Prometheus' rate() takes as a counter reset), and a
 * server or service gone from the table or the config has no series any more.
 */
export class DirectorMetrics {
  readonly registry = new Registry();
  readonly cycles: Counter<'result' | 'kind'>;
  readonly cycleErrors: Counter<'code'>;
  readonly cycleSeconds: Histogram<'kind'>;
  readonly ops: Counter<'kind'>;
  readonly transitions: Counter<(typeof SERVER_LABELS)[number] | 'state'>;
  readonly tableReadErrors: Counter<'code'>;
  #rows: Rows = NO_ROWS;
  #tableReadOk = 1;
  #ha: HaStatus | null = null;
  #haSource: (() => Promise<HaStatus>) | undefined;

  constructor(options: { version?: string; processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    // The `*_build_info` convention: a gauge always 1, whose labels say what runs (joins on it pick a version).
    new Gauge({
      name: 'tiergate_build_info',
      help: 'Always 1; the labels say which tiergate and Node.js versions this director runs.',
      labelNames: ['version', 'node_version'],
      registers,
    }).set({ version: options.version ?? VERSION, node_version: process.version }, 1);
    if (options.processMetrics !== false) {
      // getMetricsAsArray is typed as plain MetricObjects, but returns the registered Metric instances.
      for (const m of processMetrics().getMetricsAsArray()) this.registry.registerMetric(m as unknown as Metric);
    }
    this.cycles = new Counter({
      name: 'tiergate_director_reconcile_total',
      help: 'Reconcile cycles, by result (ok, error) and kind (full, services, idle).',
      labelNames: ['result', 'kind'],
      registers,
    });
    this.cycleErrors = new Counter({
      name: 'tiergate_director_reconcile_errors_total',
      help: 'Failed reconcile cycles, by error code (TG_DIRECTOR_APPLY_PARTIAL, TG_IPVS_*, ...).',
      labelNames: ['code'],
      registers,
    });
    this.cycleSeconds = new Histogram({
      name: 'tiergate_director_reconcile_duration_seconds',
      help: 'Time of one reconcile cycle (read, plan, apply), by kind (full, services, idle).',
      labelNames: ['kind'],
      buckets: [0.0005, 0.001, 0.005, 0.02, 0.05, 0.1, 0.5, 2, 10],
      registers,
    });
    this.ops = new Counter({
      name: 'tiergate_director_ops_total',
      help: 'IPVS writes applied, by kind (add-service, update-destination, ...).',
      labelNames: ['kind'],
      registers,
    });
    this.transitions = new Counter({
      name: 'tiergate_director_health_transitions_total',
      help: 'Real-server health changes, by service, real server and new state (up, down).',
      labelNames: [...SERVER_LABELS, 'state'],
      registers,
    });

    this.tableReadErrors = new Counter({
      name: 'tiergate_director_table_read_errors_total',
      help: 'Scrapes whose read of the kernel IPVS table failed, by error code (the table series are absent then).',
      labelNames: ['code'],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'tiergate_director_table_read_ok',
      help: '1 when this scrape read the kernel IPVS table, 0 when the read failed (the table series are absent then).',
      registers,
      collect() {
        this.set(self.#tableReadOk);
      },
    });
    // The VRRP pair (docs/director.md, "Two directors"): which VIPs this director holds now, what keepalived's notify
    // script recorded, and which sync daemons the kernel runs. Read at each scrape from the host (haStatus), only when
    // this director is one of a pair (setHaSource); alerts on them: infra/prometheus/rules.yml (no holder, two holders).
    new Gauge({
      name: 'tiergate_director_vip_held',
      help: "1 when the VIP is on this director's interface now (the VRRP MASTER holds it), else 0.",
      labelNames: ['vip'],
      registers,
      collect() {
        this.reset();
        for (const v of self.#ha?.vips ?? []) this.set({ vip: v.address }, v.held ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tiergate_director_vrrp_state',
      help: "1 for keepalived's state as its notify script last recorded it (MASTER, BACKUP, FAULT, STOP); no series without a record.",
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const recorded = self.#ha?.vrrp?.state;
        if (recorded) for (const state of new Set([...VRRP_STATES, recorded])) this.set({ state }, state === recorded ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tiergate_director_sync_daemon',
      help: 'The IPVS connection sync daemons the kernel runs: 1 per state (master, backup) running, 0 otherwise; `wanted` says which this director should run now.',
      labelNames: ['state', 'wanted'],
      registers,
      collect() {
        this.reset();
        const ha = self.#ha;
        if (!ha || 'error' in ha.syncDaemons) return;
        const running = new Set(ha.syncDaemons.map((d) => d.state));
        for (const state of ['master', 'backup'] as const)
          this.set({ state, wanted: String(ha.wantedSync === state) }, running.has(state) ? 1 : 0);
      },
    });

    // Known label values start at 0 (Prometheus' advice): an error rate or alert over them has a series to compute
    // on before the first error, and the first error is an increase from 0 rather than a series appearing.
    for (const kind of CYCLE_KINDS) {
      for (const result of ['ok', 'error']) this.cycles.inc({ result, kind }, 0);
      this.cycleSeconds.zero({ kind });
    }
    for (const kind of OP_KINDS) this.ops.inc({ kind }, 0);

    const rows = () => this.#rows;
    const serviceCounter = (name: string, help: string, stat: keyof IpvsStats) =>
      new Counter({
        name,
        help,
        labelNames: SERVICE_LABELS,
        registers,
        collect() {
          this.reset();
          for (const r of rows().services) if (r.stats) this.inc(r.labels, Number(r.stats[stat]));
        },
      });
    const serverCounter = (name: string, help: string, stat: keyof IpvsStats) =>
      new Counter({
        name,
        help,
        labelNames: SERVER_LABELS,
        registers,
        collect() {
          this.reset();
          for (const r of rows().servers) if (r.stats) this.inc(r.labels, Number(r.stats[stat]));
        },
      });
    const serverGauge = <T extends { labels: ServerLabels }>(name: string, help: string, of: (r: Rows) => T[], value: (r: T) => number) =>
      new Gauge({
        name,
        help,
        labelNames: SERVER_LABELS,
        registers,
        collect() {
          this.reset();
          for (const r of of(rows())) this.set(r.labels, value(r));
        },
      });

    // ipvsadm -Ln --stats, per virtual service: Conns, InPkts, OutPkts, InBytes, OutBytes.
    serviceCounter(
      'tiergate_director_service_connections_total',
      'Connections IPVS scheduled for the virtual service (ipvsadm Conns).',
      'conns',
    );
    serviceCounter(
      'tiergate_director_service_incoming_packets_total',
      'Packets from clients to the virtual service (ipvsadm InPkts).',
      'inPkts',
    );
    serviceCounter(
      'tiergate_director_service_outgoing_packets_total',
      'Reply packets forwarded by the director (ipvsadm OutPkts; NAT only).',
      'outPkts',
    );
    serviceCounter(
      'tiergate_director_service_incoming_bytes_total',
      'Bytes from clients to the virtual service (ipvsadm InBytes).',
      'inBytes',
    );
    serviceCounter(
      'tiergate_director_service_outgoing_bytes_total',
      'Reply bytes forwarded by the director (ipvsadm OutBytes; NAT only).',
      'outBytes',
    );
    // … and per real server.
    serverCounter(
      'tiergate_director_realserver_connections_total',
      'Connections IPVS scheduled to the real server (ipvsadm Conns).',
      'conns',
    );
    serverCounter(
      'tiergate_director_realserver_incoming_packets_total',
      'Packets forwarded to the real server (ipvsadm InPkts).',
      'inPkts',
    );
    serverCounter(
      'tiergate_director_realserver_outgoing_packets_total',
      'Reply packets of the real server (ipvsadm OutPkts; NAT only).',
      'outPkts',
    );
    serverCounter('tiergate_director_realserver_incoming_bytes_total', 'Bytes forwarded to the real server (ipvsadm InBytes).', 'inBytes');
    serverCounter(
      'tiergate_director_realserver_outgoing_bytes_total',
      'Reply bytes of the real server (ipvsadm OutBytes; NAT only).',
      'outBytes',
    );
    // ipvsadm -Ln: Weight, ActiveConn, InActConn.
    serverGauge(
      'tiergate_director_realserver_weight',
      'The weight the kernel holds for the real server (ipvsadm Weight; 0 while down or draining).',
      (r) => r.servers,
      (r) => r.weight,
    );
    serverGauge(
      'tiergate_director_realserver_configured_weight',
      'The weight the config gives the real server (the kernel holds it while the server is up).',
      (r) => r.configuredWeights,
      (r) => r.weight,
    );
    serverGauge(
      'tiergate_director_realserver_active_connections',
      'Active (established) connections IPVS counts for the real server (ipvsadm ActiveConn).',
      (r) => r.servers,
      (r) => r.activeConns,
    );
    serverGauge(
      'tiergate_director_realserver_inactive_connections',
      'Inactive connections IPVS counts for the real server (ipvsadm InActConn: closing, or UDP).',
      (r) => r.servers,
      (r) => r.inactConns,
    );
    serverGauge(
      'tiergate_director_realserver_healthy',
      '1 when the real server passes its health check, 0 when it fails it (no series without a check).',
      (r) => r.health,
      (r) => (r.healthy ? 1 : 0),
    );
  }

  /** The table, config and health the next collections report (replacing the last snapshot's series). */
  update(snapshot: DirectorMetricsSnapshot): void {
    this.#rows = rowsOf(snapshot);
    this.#tableReadOk = 1;
  }

  /**
   * The kernel's table could not be read for this scrape: its series go (absent is "unknown"; stale counters would
   * feed rate() numbers the kernel never had), the configured weights and health stay, and the failure is counted —
   * so the scrape itself still succeeds and an alert sees the read error rather than `up == 0`.
   */
  tableReadFailed(snapshot: Omit<DirectorMetricsSnapshot, 'table'>, code: string): void {
    this.#rows = rowsOf({ ...snapshot, table: [] });
    this.#tableReadOk = 0;
    this.tableReadErrors.inc({ code });
  }

  /** Where the VRRP pair's state comes from (a director of a pair only); read by refreshHa() before each scrape. */
  setHaSource(source: () => Promise<HaStatus>): void {
    this.#haSource = source;
  }

  /** Reads the HA state for the next collection; a failed read leaves those series absent for this scrape. */
  async refreshHa(): Promise<void> {
    if (!this.#haSource) return;
    this.#ha = await this.#haSource().catch(() => null);
  }
}

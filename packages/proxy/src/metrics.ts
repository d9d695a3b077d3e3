import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type HealthChange, TRANSITION_CHANNEL, targetKey } from '@tiergate/health';
import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Metric,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client';
import { ATTEMPT_CHANNEL, type AttemptEvent, REQUEST_CHANNEL, type RequestEvent } from './channels.ts';
import type { BoundAddress, ProxySection, ProxyServer, ProxyStatus } from './proxy-server.ts';

/** Seconds; upstream and total request durations (a few ms on a LAN up to the default timeouts). */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Node's own channel: one message per connection accepted by any net.Server of this process. */
const SOCKET_CHANNEL = 'net.server.socket';
const NO_POOL = '-';

/**
 * prom-client's default metrics of this process (process_*, nodejs_*: CPU, memory, heap spaces, event-loop lag,
 * GC, handles, file descriptors), with a `worker` label so that the cluster primary's merge keeps each process
 * apart. One registry per process and label, made on first use and shared: collectDefaultMetrics starts an
 * event-loop-delay monitor and a GC observer that nothing can stop, so making them per ProxyMetrics (tests make
 * many) would pile them up.
 */
const processRegistries = new Map<string, Registry>();
const UNLINTABLE_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
function processMetrics(worker: string): Registry {
  let registry = processRegistries.get(worker);
  if (!registry) {
    registry = new Registry();
    collectDefaultMetrics({ register: registry, labels: { worker } });
    // Gauges that prom-client names `*_total`, which Prometheus reserves for counters (promtool check metrics
    // refuses them, and in OpenMetrics they would clash with the per-type gauges' families): the per-type
    // `nodejs_active_handles` / `_requests` / `_resources` stay, and sum() of those is the total.
    for (const name of UNLINTABLE_DEFAULT_METRICS) registry.removeSingleMetric(name);
    processRegistries.set(worker, registry);
  }
  return registry;
}

/** Registers `from`'s metric objects in `to` too (both then collect the same metrics; nothing is copied). */
function shareMetrics(from: Registry, to: Registry): void {
  // getMetricsAsArray is typed as plain MetricObjects, but returns the registered Metric instances.
  for (const m of from.getMetricsAsArray()) to.registerMetric(m as unknown as Metric);
}

/** The proxy package's version: tiergate's packages are versioned together. */
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
/**
 * The most recent `size` latencies of one server (a ring buffer). Percentiles over a recent window
 * answer "how is it now" better than a lifetime histogram, and raw samples merge exactly across workers.
 */
export class LatencyReservoir {
  readonly #samples: Float64Array;
  #next = 0;
  #count = 0;

  constructor(size = 256) {
    this.#samples = new Float64Array(size);
  }

  add(ms: number): void {
    this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % this.#samples.length;
    if (this.#count < this.#samples.length) this.#count++;
  }

  values(): number[] {
    return Array.from(this.#samples.subarray(0, this.#count));
  }
}

/** Nearest-rank percentiles (`p` in 0–100) of `samples`, in ms; all 0 without samples. */
export function percentiles(samples: readonly number[], ps: readonly number[]): number[] {
  if (samples.length === 0) return ps.map(() => 0);
  const sorted = [...samples].sort((a, b) => a - b);
  return ps.map((p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!);
}

/**
 * One labelled counter series, counted in a plain number: prom-client's `inc` validates and hashes the label set on
 * every call (a child from `labels()` too), which was the larger part of the metrics' ~5 µs per request in the
 * profile (loadtest/README.md). The metric's `collect()` hands the totals to prom-client when it is read.
 */
class CounterSeries {
  value = 0;
  readonly labels: Record<string, string>;
  constructor(labels: Record<string, string>) {
    this.labels = labels;
  }
}

/** One labelled histogram series in plain numbers (see CounterSeries): per-bucket counts (not cumulative), sum, count. */
class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly labels: Record<string, string>;
  readonly #bounds: readonly number[];
  constructor(labels: Record<string, string>, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    // Above the last bound: only in `count` (the +Inf bucket), as prom-client counts it.
    if (i < b.length) this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/** prom-client's stored form of one histogram series (what its get() exports; `zero()` creates it). */
interface PromHistogramEntry {
  labels: Record<string, string>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

/** Replaces `counter`'s series with the totals of `series` (called from its collect(), before prom-client reads it). */
function exportCounter(counter: Counter<string>, series: Iterable<CounterSeries>): void {
  counter.reset();
  for (const s of series) counter.inc(s.labels, s.value);
}

/** Replaces `histogram`'s series with `series` (from its collect()): each is created by zero(), then filled in. */
function exportHistogram(histogram: Histogram<string>, series: Iterable<HistogramSeries>, bounds: readonly number[]): void {
  histogram.reset();
  const stored = () => Object.values((histogram as unknown as { hashMap: Record<string, PromHistogramEntry> }).hashMap);
  for (const s of series) {
    histogram.zero(s.labels);
    const entry = stored().find((e) => e.labels === s.labels);
    if (!entry) continue;
    entry.sum = s.sum;
    entry.count = s.count;
    for (let i = 0; i < bounds.length; i++) entry.bucketValues[bounds[i]!] = s.counts[i]!;
  }
}

/** A pool's request series: requests by status class (index 0–9: `0xx`…), duration, retries. */
interface PoolSeries {
  readonly requests: (CounterSeries | undefined)[];
  duration: HistogramSeries | undefined;
  retries: CounterSeries | undefined;
}

/** One upstream server's attempt series and /status counters. */
interface ServerSeries {
  requests: number;
  failures: number;
  readonly reservoir: LatencyReservoir;
  ok: CounterSeries | undefined;
  failed: CounterSeries | undefined;
  duration: HistogramSeries | undefined;
}

/** Counters of one upstream server in one process. */
export interface ServerCounters {
  readonly requests: number;
  readonly failures: number;
  /** Recent attempt latencies, ms. */
  readonly latencies: number[];
}

/** What one process (the single proxy or one cluster worker) reports to the admin endpoint. */
export interface WorkerSnapshot {
  readonly worker: string;
  readonly pid: number;
  readonly uptimeS: number;
  readonly rssBytes: number;
  readonly status: ProxyStatus;
  /** Per server, keyed `pool/address`. */
  readonly servers: Record<string, ServerCounters>;
  /** `down` / `backup` flags of the config, keyed like `servers` (the balancer state does not carry them). */
  readonly flags: Record<string, { down: boolean; backup: boolean }>;
}

export interface ProxyMetricsOptions {
  /** Defaults to a new Registry (not prom-client's global one). */
  readonly registry?: Registry;
  /** Value of the `worker` label on per-process series; `0` for a single process. */
  readonly worker?: string;
  /** Samples kept per server for /status percentiles. */
  readonly reservoirSize?: number;
  /** Add this process's default metrics (process_*, nodejs_*) with the `worker` label (default true). */
  readonly processMetrics?: boolean;
}

/**
 * Prometheus metrics and per-server counters of one running proxy, fed only from diagnostics
 * channels (request, attempt, health transition, node's net.server.socket), so the data plane has no
 * metrics code. The request and attempt series are counted in plain numbers found through per-pool and per-server
 * objects (no label set is built or hashed per event) and handed to prom-client when the registry is read.
 * `close()` unsubscribes; the registry stays readable.
 */
export class ProxyMetrics implements Disposable {
  readonly registry: Registry;
  readonly worker: string;
  readonly #proxy: ProxyServer;
  /** Per pool, then per upstream address. */
  readonly #servers = new Map<string, Map<string, ServerSeries>>();
  readonly #pools = new Map<string, PoolSeries>();
  readonly #errorSeries = new Map<string, CounterSeries>();
  readonly #reservoirSize: number;
  readonly #started = Date.now();
  #ports: Set<number>;
  #flags: Record<string, { down: boolean; backup: boolean }> = {};
  readonly #transitions: Counter<'monitor' | 'target' | 'to'>;
  readonly #connections: Gauge;
  readonly #accepted: Counter;
  readonly #subs: [string, (m: unknown) => void][];

  constructor(proxy: ProxyServer, section: ProxySection, options: ProxyMetricsOptions = {}) {
    this.#proxy = proxy;
    this.registry = options.registry ?? new Registry();
    this.worker = options.worker ?? '0';
    this.#reservoirSize = options.reservoirSize ?? 256;
    this.#ports = new Set(proxy.addresses().map((a) => a.port));
    this.setSection(section);
    const registers = [this.registry];
    const self = this;
    new Counter({
      name: 'tiergate_proxy_requests_total',
      help: 'Client requests finished, by pool and status class (1xx..5xx; 0xx = no response).',
      labelNames: ['pool', 'code'],
      registers,
      collect() {
        exportCounter(
          this,
          self.#series((p) => p.requests),
        );
      },
    });
    new Histogram({
      name: 'tiergate_proxy_request_duration_seconds',
      help: 'Client request duration, first byte in to last byte out.',
      labelNames: ['pool'],
      buckets: LATENCY_BUCKETS,
      registers,
      collect() {
        exportHistogram(
          this,
          self.#series((p) => [p.duration]),
          LATENCY_BUCKETS,
        );
      },
    });
    new Histogram({
      name: 'tiergate_proxy_upstream_duration_seconds',
      help: 'Duration of each upstream attempt.',
      labelNames: ['pool', 'upstream'],
      buckets: LATENCY_BUCKETS,
      registers,
      collect() {
        exportHistogram(
          this,
          self.#serverSeries((s) => [s.duration]),
          LATENCY_BUCKETS,
        );
      },
    });
    new Counter({
      name: 'tiergate_proxy_upstream_attempts_total',
      help: 'Upstream attempts by result (failed = counted against the server).',
      labelNames: ['pool', 'upstream', 'result'],
      registers,
      collect() {
        exportCounter(
          this,
          self.#serverSeries((s) => [s.ok, s.failed]),
        );
      },
    });
    new Counter({
      name: 'tiergate_proxy_retries_total',
      help: 'Attempts beyond the first (requests retried on another server).',
      labelNames: ['pool'],
      registers,
      collect() {
        exportCounter(
          this,
          self.#series((p) => [p.retries]),
        );
      },
    });
    new Counter({
      name: 'tiergate_proxy_errors_total',
      help: 'Requests the proxy answered or cut with an error, by TgError code.',
      labelNames: ['code'],
      registers,
      collect() {
        exportCounter(this, self.#errorSeries.values());
      },
    });
    this.#transitions = new Counter({
      name: 'tiergate_proxy_health_transitions_total',
      help: 'Active health-check transitions (summed over workers: each worker checks on its own).',
      labelNames: ['monitor', 'target', 'to'],
      registers,
    });
    this.#connections = new Gauge({ name: 'tiergate_proxy_client_connections', help: 'Open client connections.', registers });
    // Not `tiergate_proxy_client_connections_total`: OpenMetrics names a counter's family without `_total`, which
    // would be the gauge's family too (a clash Prometheus refuses in OpenMetrics exposition).
    this.#accepted = new Counter({
      name: 'tiergate_proxy_client_connections_accepted_total',
      help: 'Client connections accepted.',
      registers,
    });
    new Gauge({
      name: 'tiergate_proxy_in_flight_requests',
      help: 'Requests being proxied now.',
      registers,
      collect() {
        this.set(self.#proxy.status().inFlight);
      },
    });
    // Memory, CPU and the rest per process: the default metrics (process_resident_memory_bytes,
    // nodejs_heap_size_used_bytes, nodejs_heap_size_total_bytes, nodejs_external_memory_bytes, …), one metric per
    // quantity, under the names every Node.js dashboard knows.
    if (options.processMetrics !== false) shareMetrics(processMetrics(this.worker), this.registry);
    this.#subs = [
      [REQUEST_CHANNEL, (m) => this.#onRequest(m as RequestEvent)],
      [ATTEMPT_CHANNEL, (m) => this.#onAttempt(m as AttemptEvent)],
      [TRANSITION_CHANNEL, (m) => this.#onTransition(m as HealthChange)],
      [SOCKET_CHANNEL, (m) => this.#onSocket((m as { socket: Socket }).socket)],
    ];
    for (const [name, fn] of this.#subs) subscribe(name, fn);
  }

  /** After a reload: the config flags shown by /status, and the listener ports (unchanged by a reload). */
  setSection(section: ProxySection): void {
    const flags: Record<string, { down: boolean; backup: boolean }> = {};
    for (const [pool, p] of Object.entries(section.pools))
      for (const s of p.servers) flags[`${pool}/${s.address}`] = { down: s.down, backup: s.backup };
    this.#flags = flags;
    this.#ports = new Set(this.#proxy.addresses().map((a: BoundAddress) => a.port));
  }

  /** The series `pick` returns of every pool, in first-seen order. */
  #series<T>(pick: (p: PoolSeries) => readonly (T | undefined)[]): T[] {
    const out: T[] = [];
    for (const p of this.#pools.values()) for (const s of pick(p)) if (s !== undefined) out.push(s);
    return out;
  }

  #serverSeries<T>(pick: (s: ServerSeries) => readonly (T | undefined)[]): T[] {
    const out: T[] = [];
    for (const byAddress of this.#servers.values())
      for (const server of byAddress.values()) for (const s of pick(server)) if (s !== undefined) out.push(s);
    return out;
  }

  #pool(name: string): PoolSeries {
    let p = this.#pools.get(name);
    if (!p) {
      p = { requests: [], duration: undefined, retries: undefined };
      this.#pools.set(name, p);
    }
    return p;
  }

  #onRequest(e: RequestEvent): void {
    const pool = e.pool ?? NO_POOL;
    const p = this.#pool(pool);
    const cls = Math.min(9, Math.max(0, Math.floor(e.status / 100)));
    p.requests[cls] ??= new CounterSeries({ pool, code: `${cls}xx` });
    p.requests[cls].value++;
    p.duration ??= new HistogramSeries({ pool }, LATENCY_BUCKETS);
    p.duration.observe(e.durationMs / 1000);
    if (e.attempts > 1) {
      p.retries ??= new CounterSeries({ pool });
      p.retries.value += e.attempts - 1;
    }
    if (e.error) {
      let s = this.#errorSeries.get(e.error);
      if (!s) {
        s = new CounterSeries({ code: e.error });
        this.#errorSeries.set(e.error, s);
      }
      s.value++;
    }
  }

  #onAttempt(e: AttemptEvent): void {
    let byAddress = this.#servers.get(e.pool);
    if (!byAddress) {
      byAddress = new Map();
      this.#servers.set(e.pool, byAddress);
    }
    let s = byAddress.get(e.upstream);
    if (!s) {
      s = {
        requests: 0,
        failures: 0,
        reservoir: new LatencyReservoir(this.#reservoirSize),
        ok: undefined,
        failed: undefined,
        duration: undefined,
      };
      byAddress.set(e.upstream, s);
    }
    s.requests++;
    s.reservoir.add(e.durationMs);
    if (e.failed) {
      s.failures++;
      s.failed ??= new CounterSeries({ pool: e.pool, upstream: e.upstream, result: 'failed' });
      s.failed.value++;
    } else {
      s.ok ??= new CounterSeries({ pool: e.pool, upstream: e.upstream, result: 'ok' });
      s.ok.value++;
    }
    s.duration ??= new HistogramSeries({ pool: e.pool, upstream: e.upstream }, LATENCY_BUCKETS);
    s.duration.observe(e.durationMs / 1000);
  }

  #onTransition(c: HealthChange): void {
    this.#transitions.labels(c.monitor, targetKey(c.target), c.healthy ? 'up' : 'down').inc();
  }

  #onSocket(socket: Socket): void {
    if (!this.#ports.has(socket.localPort ?? -1)) return;
    this.#accepted.inc();
    this.#connections.inc();
    socket.once('close', () => this.#connections.dec());
  }

  /** This process's part of /status. */
  snapshot(): WorkerSnapshot {
    const servers: Record<string, ServerCounters> = {};
    for (const [pool, byAddress] of this.#servers)
      for (const [address, s] of byAddress)
        servers[`${pool}/${address}`] = { requests: s.requests, failures: s.failures, latencies: s.reservoir.values() };
    return {
      worker: this.worker,
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.#started) / 1000),
      rssBytes: process.memoryUsage.rss(),
      status: this.#proxy.status(),
      servers,
      flags: this.#flags,
    };
  }

  close(): void {
    for (const [name, fn] of this.#subs) unsubscribe(name, fn);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A registry's `getMetricsAsJSON()`: what a worker sends the cluster primary. */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** The exposition formats /metrics serves: Prometheus text 0.0.4, or OpenMetrics 1.0 when the scraper asks. */
export type ExpositionFormat = 'prometheus' | 'openmetrics';

/**
 * The format an `Accept` header asks for: OpenMetrics when it names `application/openmetrics-text` (what Prometheus
 * sends first, with q=1), else Prometheus text. A q=0 entry is a refusal, not a request.
 */
export function expositionFormat(accept: string | undefined): ExpositionFormat {
  for (const entry of (accept ?? '').split(',')) {
    const [type, ...params] = entry.split(';').map((p) => p.trim().toLowerCase());
    if (type !== 'application/openmetrics-text') continue;
    const q = params.find((p) => p.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return 'openmetrics';
  }
  return 'prometheus';
}

/**
 * Merges registries' JSON (one per worker, plus the primary's) with prom-client's AggregatorRegistry:
 * series with equal labels are summed (gauges too: open connections add up); per-worker series carry
 * a `worker` label and stay apart. `format`: the exposition written.
 */
export async function aggregateMetrics(
  parts: readonly MetricsJson[],
  format: ExpositionFormat = 'prometheus',
): Promise<{ contentType: string; text: string }> {
  parts = parts.map(keepPerWorker);
  if (format === 'prometheus') return exposition(AggregatorRegistry.aggregate(parts as MetricsJson[]));
  // The parts come from Prometheus-text registries, whose counters are named `…_total`; an OpenMetrics registry
  // names the family without it and appends `_total` to the samples itself (prom-client 15 would write
  // `…_total_total`), so the counters are renamed to their family first.
  const families = parts.map((part) =>
    // `type` is the string 'counter' at run time (prom-client's typings declare a numeric enum).
    part.map((m) => (String(m.type) === 'counter' && m.name.endsWith('_total') ? { ...m, name: m.name.slice(0, -'_total'.length) } : m)),
  );
  const registry = AggregatorRegistry.aggregate(families);
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  return exposition(registry);
}

/**
 * prom-client's `omit` aggregator drops a family whose value differs by process (process_start_time_seconds): right
 * for unlabelled cluster metrics, wrong here, where every default metric carries the `worker` label, so its series
 * never merge across processes. Those families are kept, one series per worker.
 */
function keepPerWorker(part: MetricsJson): MetricsJson {
  return part.map((m) =>
    m.aggregator === 'omit' && m.values.length > 0 && m.values.every((v) => v.labels.worker !== undefined)
      ? { ...m, aggregator: 'first' }
      : m,
  );
}

async function exposition(registry: { contentType: string; metrics(): Promise<string> }): Promise<{ contentType: string; text: string }> {
  return { contentType: registry.contentType, text: await registry.metrics() };
}

export interface RuntimeMetricsOptions {
  /**
   * Add this process's default metrics with this `worker` label: the cluster primary's (`primary`). Not for the
   * single process, whose ProxyMetrics has them already.
   */
  readonly processMetricsWorker?: string;
  /** `tiergate_build_info{version}` (default: this package's version). */
  readonly version?: string;
}

/** Counters of the process that runs the proxy (the cluster primary, or the single process), and the build info. */
export class RuntimeMetrics {
  readonly registry = new Registry();
  readonly reloads: Counter<'result'>;
  readonly restarts: Counter;
  readonly workers: Gauge;

  constructor(options: RuntimeMetricsOptions = {}) {
    const registers = [this.registry];
    // The `*_build_info` convention: a gauge always 1, whose labels say what runs (joins on it pick a version).
    new Gauge({
      name: 'tiergate_build_info',
      help: 'Always 1; the labels say which tiergate and Node.js versions this proxy runs.',
      labelNames: ['version', 'node_version'],
      registers,
    }).set({ version: options.version ?? VERSION, node_version: process.version }, 1);
    if (options.processMetricsWorker !== undefined) {
      shareMetrics(processMetrics(options.processMetricsWorker), this.registry);
    }
    this.reloads = new Counter({
      name: 'tiergate_proxy_reloads_total',
      help: 'Config reloads by result (ok, error).',
      labelNames: ['result'],
      registers,
    });
    this.restarts = new Counter({
      name: 'tiergate_proxy_worker_restarts_total',
      help: 'Workers replaced after an unplanned exit.',
      registers,
    });
    this.workers = new Gauge({ name: 'tiergate_proxy_workers', help: 'Worker processes serving requests.', registers });
  }
}

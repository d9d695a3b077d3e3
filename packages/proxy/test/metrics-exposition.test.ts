import { promtoolCheckMetrics } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { aggregateMetrics, expositionFormat, type MetricsJson, ProxyMetrics, RuntimeMetrics, startAdminServer } from '../src/index.ts';
import { fetchText, named, proxySection, server, startTestProxy, startUpstream } from './helpers.ts';

/** `# TYPE` lines of an exposition: family name → type. */
function families(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** The value of the one sample of `name` with exactly these labels (label order as written), else undefined. */
function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const m of text.matchAll(/^(\w+)(?:\{([^}]*)\})? (\S+)$/gm)) {
    if (m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v))
      return Number(m[3]);
  }
  return undefined;
}

/**
 * The /metrics a two-worker proxy serves: each worker's ProxyMetrics, and the primary's RuntimeMetrics with its own
 * process metrics, merged by aggregateMetrics behind the real admin listener (what cli/proxy-runtime/primary.ts wires).
 */
async function clusterMetrics(headers: Record<string, string> = {}): Promise<string> {
  return (await clusterMetricsResponse(headers)).body;
}

async function clusterMetricsResponse(headers: Record<string, string>) {
  await using app = await startUpstream(named('app'));
  const pools = { web: { servers: [server(app)] } };
  await using p = await startTestProxy({ pools });
  using w1 = new ProxyMetrics(p.proxy, proxySection({ pools }), { worker: '1' });
  using w2 = new ProxyMetrics(p.proxy, proxySection({ pools }), { worker: '2' });
  const runtime = new RuntimeMetrics({ processMetricsWorker: 'primary' });
  for (let i = 0; i < 3; i++) expect((await fetchText(`${p.url}/`)).status).toBe(200);
  const json = async (r: { getMetricsAsJSON(): Promise<unknown> }) => (await r.getMetricsAsJSON()) as MetricsJson;
  await using admin = await startAdminServer(
    { address: '127.0.0.1', port: 0 },
    {
      snapshots: async () => [w1.snapshot(), w2.snapshot()],
      metrics: async (format) => aggregateMetrics([await json(w1.registry), await json(w2.registry), await json(runtime.registry)], format),
      draining: () => false,
    },
  );
  const r = await fetchText(`http://127.0.0.1:${admin.address().port}/metrics`, { headers });
  expect(r.status).toBe(200);
  return r;
}

/** What Prometheus 2.x sends when it scrapes. */
const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

describe('/metrics exposition', () => {
  it('passes `promtool check metrics` (Prometheus’ own linter) as served by the admin listener', async () => {
    const text = await clusterMetrics();
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
  });

  it('no family clashes with a counter’s OpenMetrics family (its name without _total)', async () => {
    const types = families(await clusterMetrics());
    const clashes = [...types]
      .filter(([name, type]) => type === 'counter' && name.endsWith('_total') && types.has(name.slice(0, -'_total'.length)))
      .map(([name]) => name);
    expect(clashes).toEqual([]);
    expect(types.get('tiergate_proxy_client_connections')).toBe('gauge');
    expect(types.get('tiergate_proxy_client_connections_accepted_total')).toBe('counter');
  });

  it('has tiergate_build_info, and the default process metrics per worker (one metric per memory quantity)', async () => {
    const text = await clusterMetrics();
    expect(value(text, 'tiergate_build_info', { version: '0.1.0', node_version: process.version })).toBe(1);
    for (const worker of ['1', '2', 'primary']) {
      expect(value(text, 'process_resident_memory_bytes', { worker }), `rss of ${worker}`).toBeGreaterThan(1e6);
      expect(value(text, 'nodejs_heap_size_used_bytes', { worker }), `heap of ${worker}`).toBeGreaterThan(1e5);
      expect(value(text, 'process_cpu_seconds_total', { worker }), `cpu of ${worker}`).toBeGreaterThan(0);
      // prom-client's merge omits it unless kept per worker (its value differs by process).
      expect(value(text, 'process_start_time_seconds', { worker }), `start time of ${worker}`).toBeGreaterThan(1.7e9);
    }
    expect(families(text).has('tiergate_proxy_worker_memory_bytes')).toBe(false); // a `kind` label mixed quantities
    // Per-worker series stay apart in the merge; the proxy's own counters are summed over workers (both saw 3).
    expect(value(text, 'tiergate_proxy_requests_total', { pool: 'web', code: '2xx' })).toBe(6);
  });

  it('OpenMetrics 1.0 when the scraper asks for it (Accept), each family once, ending in # EOF; Prometheus text otherwise', async () => {
    const om = await clusterMetricsResponse({ accept: PROMETHEUS_ACCEPT });
    expect(om.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(om.body.endsWith('# EOF\n')).toBe(true);
    const typeLines = [...om.body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    expect(typeLines.filter((name, i) => typeLines.indexOf(name) !== i)).toEqual([]); // a family named twice is invalid
    expect(om.body).toMatch(/^# TYPE tiergate_proxy_client_connections_accepted counter$/m);
    expect(om.body).toMatch(/^# TYPE tiergate_proxy_client_connections gauge$/m);
    expect(om.body).toMatch(/^tiergate_proxy_requests_total\{pool="web",code="2xx"\} 6$/m);
    const text = await clusterMetricsResponse({ accept: 'text/plain' });
    expect(text.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(text.body).not.toContain('# EOF');
  });

  it('expositionFormat reads Accept: OpenMetrics when named (not with q=0), else Prometheus text', () => {
    expect(expositionFormat(PROMETHEUS_ACCEPT)).toBe('openmetrics');
    expect(expositionFormat('application/openmetrics-text; version=1.0.0')).toBe('openmetrics');
    expect(expositionFormat('text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0')).toBe('prometheus');
    expect(expositionFormat(undefined)).toBe('prometheus');
    expect(expositionFormat('*/*')).toBe('prometheus');
  });

  it('without a metrics source (telemetry.metrics.enabled: false) /metrics is 404 and the rest still answers', async () => {
    await using admin = await startAdminServer({ address: '127.0.0.1', port: 0 }, { snapshots: async () => [], draining: () => false });
    const base = `http://127.0.0.1:${admin.address().port}`;
    expect(await fetchText(`${base}/metrics`)).toMatchObject({ status: 404, body: 'metrics are off (telemetry.metrics.enabled: false)\n' });
    expect((await fetchText(`${base}/healthz`)).status).toBe(200);
  });
});

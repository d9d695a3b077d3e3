import { promtoolCheckMetrics } from '@tiergate/testkit';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { admin, configDir, metricSum, proxyYaml, startProxyProc, startUpstream } from './proxy-ops-helpers.ts';

/** The real `tiergate proxy` process: what its admin listener's /metrics serves, and whether it serves it. */
describe('tiergate proxy /metrics (real processes)', () => {
  it.each([1, 2])(
    'workers: %i: promtool check metrics passes on the served text, with build info and per-process metrics',
    async (workers) => {
      await using app = await startUpstream('A');
      using cfg = configDir(proxyYaml({ workers, servers: [app.address] }));
      await using p = await startProxyProc(cfg.file);
      for (let i = 0; i < 4; i++) expect((await fetch(`${p.url}/`)).status).toBe(200);
      const m = await admin(p.admin, '/metrics');
      expect(m.status).toBe(200);
      expect(await promtoolCheckMetrics(m.body)).toEqual({ code: 0, output: '' });
      expect(metricSum(m.body, 'tiergate_build_info', { node_version: process.version })).toBe(1);
      expect(metricSum(m.body, 'tiergate_proxy_client_connections_accepted_total')).toBeGreaterThanOrEqual(1);
      // The single process is worker 0; a cluster has workers 1…N and the primary.
      const processes = workers === 1 ? ['0'] : ['1', '2', 'primary'];
      for (const worker of processes) expect(metricSum(m.body, 'process_resident_memory_bytes', { worker }), worker).toBeGreaterThan(1e6);
      // What Prometheus asks for first: OpenMetrics, counters as families without `_total`, then `# EOF`.
      const om = await request(`${p.admin}/metrics`, {
        headers: { accept: 'application/openmetrics-text;version=1.0.0,text/plain;q=0.5' },
      });
      expect(om.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
      const text = await om.body.text();
      expect(text).toMatch(
        /^# TYPE tiergate_proxy_client_connections_accepted counter\ntiergate_proxy_client_connections_accepted_total \d+$/m,
      );
      expect(text.endsWith('# EOF\n')).toBe(true);
    },
  );

  it.each([1, 2])('workers: %i: telemetry.metrics.enabled: false turns /metrics off (404); /status still answers', async (workers) => {
    await using app = await startUpstream('A');
    using cfg = configDir(`${proxyYaml({ workers, servers: [app.address] })}telemetry:\n  metrics: { enabled: false }\n`);
    await using p = await startProxyProc(cfg.file);
    expect(await admin(p.admin, '/metrics')).toEqual({ status: 404, body: 'metrics are off (telemetry.metrics.enabled: false)\n' });
    expect((await admin(p.admin, '/status')).status).toBe(200);
  });
});

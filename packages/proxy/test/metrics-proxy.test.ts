import { Counter } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { type AttemptEvent, attemptChannel, type RequestEvent, requestChannel } from '../src/channels.ts';
import { LatencyReservoir, ProxyMetrics, percentiles } from '../src/index.ts';
import { fetchText, proxySection, server, startTestProxy, startUpstream } from './helpers.ts';

/** Sums the samples of `name` whose labels include `labels`, from Prometheus text. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^(\w+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

describe('LatencyReservoir and percentiles', () => {
  it('keeps the most recent samples only', () => {
    const r = new LatencyReservoir(3);
    for (const v of [1, 2, 3, 4, 5]) r.add(v);
    expect(r.values().sort()).toEqual([3, 4, 5]);
  });

  it('nearest-rank percentiles; zeros without samples', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentiles(xs, [50, 90, 99, 100])).toEqual([50, 90, 99, 100]);
    expect(percentiles([7], [50, 99])).toEqual([7, 7]);
    expect(percentiles([], [50])).toEqual([0]);
  });
});

describe('ProxyMetrics', () => {
  it('counts requests by pool and status class, attempts, retries, errors and connections from the channels', async () => {
    await using good = await startUpstream((req, res) => {
      req.resume();
      res.end('ok');
    });
    await using bad = await startUpstream((req, res) => {
      req.resume();
      res.statusCode = 503;
      res.end('no');
    });
    const pools = {
      app: { algorithm: 'round_robin', servers: [server(bad, { max_fails: 0 }), server(good)], retries: { on: ['error', 'http_503'] } },
    };
    await using p = await startTestProxy({ routes: [{ path: '/app', pool: 'app' }], pools });
    using m = new ProxyMetrics(p.proxy, proxySection({ pools }), { worker: '7' });
    for (let i = 0; i < 10; i++) expect((await fetchText(`${p.url}/app`)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await fetchText(`${p.url}/other`)).status).toBe(404);
    const text = await m.registry.metrics();
    expect(sample(text, 'tiergate_proxy_requests_total', { pool: 'app', code: '2xx' })).toBe(10);
    expect(sample(text, 'tiergate_proxy_requests_total', { pool: '-', code: '4xx' })).toBe(3);
    expect(sample(text, 'tiergate_proxy_errors_total', { code: 'TG_PROXY_NO_ROUTE' })).toBe(3);
    // Round robin starts on either server; every request that met `bad` first was retried once.
    const failed = sample(text, 'tiergate_proxy_upstream_attempts_total', { upstream: bad.address, result: 'failed' });
    expect(failed).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'tiergate_proxy_retries_total', { pool: 'app' })).toBe(failed);
    expect(sample(text, 'tiergate_proxy_upstream_attempts_total', { upstream: good.address, result: 'ok' })).toBe(10);
    expect(sample(text, 'tiergate_proxy_upstream_duration_seconds_count', { pool: 'app' })).toBe(10 + failed);
    expect(sample(text, 'tiergate_proxy_request_duration_seconds_count')).toBe(13);
    expect(sample(text, 'tiergate_proxy_client_connections_accepted_total')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'tiergate_proxy_in_flight_requests')).toBe(0);
    expect(sample(text, 'process_resident_memory_bytes', { worker: '7' })).toBeGreaterThan(1e6);
    const snap = m.snapshot();
    expect(snap.servers[`app/${good.address}`]).toMatchObject({ requests: 10, failures: 0 });
    expect(snap.servers[`app/${good.address}`]!.latencies).toHaveLength(10);
    expect(snap.servers[`app/${bad.address}`]).toMatchObject({ requests: failed, failures: failed });
    expect(snap.flags[`app/${good.address}`]).toEqual({ down: false, backup: false });
  });

  it('stops counting after close()', async () => {
    await using up = await startUpstream((_req, res) => res.end('x'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const m = new ProxyMetrics(p.proxy, proxySection({ pools: { app: { servers: [server(up)] } } }));
    await fetchText(`${p.url}/`);
    m.close();
    await fetchText(`${p.url}/`);
    expect(sample(await m.registry.metrics(), 'tiergate_proxy_requests_total')).toBe(1);
  });

  it('counts health transitions and shows the check in the snapshot', async () => {
    await using up = await startUpstream((_req, res) => res.end('x'));
    const pools = {
      app: {
        servers: [server(up), { address: '127.0.0.1:9' }],
        health_check: { type: 'tcp', interval: '100ms', timeout: '200ms', fall: 1, rise: 1 },
      },
    };
    await using p = await startTestProxy({ pools });
    using m = new ProxyMetrics(p.proxy, proxySection({ pools }));
    const down = () =>
      m.registry.metrics().then((t) => sample(t, 'tiergate_proxy_health_transitions_total', { target: '127.0.0.1:9', to: 'down' }));
    const deadline = Date.now() + 10_000;
    while ((await down()) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await down()).toBe(1);
    const servers = m.snapshot().status.pools[0]!.servers;
    expect(servers.map((s) => [s.address, s.healthy])).toEqual([
      [up.address, true],
      ['127.0.0.1:9', false],
    ]);
  });

  it("counts requests and attempts without prom-client's per-call label hashing, and exports them as prom-client would", async () => {
    await using up = await startUpstream((_req, res) => res.end('x'));
    const pools = { app: { servers: [server(up)] } };
    await using p = await startTestProxy({ pools });
    // prom-client's Counter#inc validates and hashes the label set per call (a child from labels() calls it too):
    // on the hot path the metrics count in plain numbers and hand prom-client the totals when it is read.
    const inc = vi.spyOn(Counter.prototype as unknown as { incWithoutExemplar(): void }, 'incWithoutExemplar');
    using m = new ProxyMetrics(p.proxy, proxySection({ pools }));
    const request = (durationMs: number, status: number, attempts = 1, error?: string) =>
      requestChannel.publish({ pool: 'app', status, durationMs, attempts, error } as Partial<RequestEvent>);
    const attempt = (durationMs: number, failed: boolean) =>
      attemptChannel.publish({ pool: 'app', upstream: up.address, durationMs, failed } as Partial<AttemptEvent>);
    try {
      // On a bucket's bound (1 ms = le 0.001), between two (3 ms: le 0.005), above the last (50 s: +Inf only).
      for (const ms of [1, 1, 3, 50_000]) request(ms, 200);
      request(2, 502, 3, 'TG_PROXY_UPSTREAM_STATUS');
      attempt(1, false);
      attempt(7, true);
      expect(inc).not.toHaveBeenCalled();
      const text = await m.registry.metrics();
      const h = 'tiergate_proxy_request_duration_seconds';
      expect(sample(text, `${h}_bucket`, { pool: 'app', le: '0.001' })).toBe(2);
      expect(sample(text, `${h}_bucket`, { pool: 'app', le: '0.0025' })).toBe(3);
      expect(sample(text, `${h}_bucket`, { pool: 'app', le: '0.005' })).toBe(4);
      expect(sample(text, `${h}_bucket`, { pool: 'app', le: '30' })).toBe(4);
      expect(sample(text, `${h}_bucket`, { pool: 'app', le: '+Inf' })).toBe(5);
      expect(sample(text, `${h}_count`, { pool: 'app' })).toBe(5);
      expect(sample(text, `${h}_sum`, { pool: 'app' })).toBeCloseTo(50.007, 9);
      expect(sample(text, 'tiergate_proxy_requests_total', { pool: 'app', code: '2xx' })).toBe(4);
      expect(sample(text, 'tiergate_proxy_requests_total', { pool: 'app', code: '5xx' })).toBe(1);
      expect(sample(text, 'tiergate_proxy_retries_total', { pool: 'app' })).toBe(2);
      expect(sample(text, 'tiergate_proxy_errors_total', { code: 'TG_PROXY_UPSTREAM_STATUS' })).toBe(1);
      expect(sample(text, 'tiergate_proxy_upstream_attempts_total', { upstream: up.address, result: 'ok' })).toBe(1);
      expect(sample(text, 'tiergate_proxy_upstream_attempts_total', { upstream: up.address, result: 'failed' })).toBe(1);
      const u = 'tiergate_proxy_upstream_duration_seconds';
      expect(sample(text, `${u}_bucket`, { upstream: up.address, le: '0.001' })).toBe(1);
      expect(sample(text, `${u}_bucket`, { upstream: up.address, le: '0.01' })).toBe(2);
      expect(sample(text, `${u}_count`, { upstream: up.address })).toBe(2);
      // Read twice: the same totals, not doubled; then more events add up.
      const ours = (t: string) =>
        t.split('\n').filter((l) => /^tiergate_proxy_(requests|request_duration|upstream|retries|errors)/.test(l));
      expect(ours(await m.registry.metrics())).toEqual(ours(text));
      request(1, 200);
      expect(sample(await m.registry.metrics(), 'tiergate_proxy_requests_total', { pool: 'app', code: '2xx' })).toBe(5);
    } finally {
      inc.mockRestore();
    }
  });
});

import { TgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { type AdminSource, mergeStatus, ProxyMetrics, readiness, startAdminServer, type WorkerSnapshot } from '../src/index.ts';
import { fetchText, proxySection, server, startTestProxy, startUpstream } from './helpers.ts';

function snap(
  worker: string,
  servers: { address: string; healthy?: boolean; failed?: boolean; active?: number }[],
  lat: number[][],
): WorkerSnapshot {
  return {
    worker,
    pid: 100 + Number(worker),
    uptimeS: 1,
    rssBytes: 1,
    status: {
      listeners: [{ address: '127.0.0.1', port: 80, family: 'IPv4', tls: false }],
      draining: false,
      inFlight: 1,
      connections: 2 + Number(worker),
      pools: [
        {
          name: 'app',
          algorithm: 'weighted',
          servers: servers.map((s) => ({
            address: s.address,
            active: s.active ?? 0,
            healthy: s.healthy ?? true,
            failed: s.failed ?? false,
            fails: 0,
            effectiveWeight: 1,
          })),
        },
      ],
    } as unknown as WorkerSnapshot['status'],
    servers: Object.fromEntries(servers.map((s, i) => [`app/${s.address}`, { requests: lat[i]!.length, failures: 0, latencies: lat[i]! }])),
    flags: { 'app/b:1': { down: true, backup: false }, 'app/a:1': { down: false, backup: true } },
  };
}

describe('mergeStatus and readiness (pure)', () => {
  it('sums counters, merges samples for percentiles and reports disagreeing workers as mixed', () => {
    const s = mergeStatus(
      [
        snap('1', [{ address: 'a:1', active: 2 }, { address: 'b:1' }], [[1, 2, 3], []]),
        snap('2', [{ address: 'a:1', failed: true, active: 1 }, { address: 'b:1' }], [[4, 5, 6, 7], []]),
      ],
      false,
    );
    const [a, b] = s.pools[0]!.servers;
    expect(a).toMatchObject({ address: 'a:1', state: 'mixed', states: { up: 1, failed: 1 }, backup: true, active: 3, requests: 7 });
    expect(a!.latencyMs).toEqual({ p50: 4, p90: 7, p99: 7, samples: 7 });
    expect(b).toMatchObject({ state: 'down', states: { down: 2 }, health: 'unchecked', requests: 0 });
    expect(s.inFlight).toBe(2);
    expect([s.connections, s.workers.map((w) => w.connections)]).toEqual([7, [3, 4]]);
    expect(s.workers.map((w) => w.pid)).toEqual([101, 102]);
    expect(readiness(s)).toEqual({ ready: true, reasons: [] });
  });

  it('is not ready while draining, without listeners, or with a pool that has no usable server', () => {
    const s = mergeStatus([snap('1', [{ address: 'a:1', healthy: false }], [[]])], true);
    expect(readiness(s)).toEqual({ ready: false, reasons: ['draining', 'pool app: no usable server'] });
    expect(readiness(mergeStatus([], false)).reasons).toEqual(['no listener bound']);
  });
});

describe('admin server', () => {
  async function withAdmin(token: string | undefined, extra: Partial<AdminSource> = {}) {
    const up = await startUpstream((_req, res) => res.end('x'));
    const pools = { app: { servers: [server(up)] } };
    const p = await startTestProxy({ pools });
    const m = new ProxyMetrics(p.proxy, proxySection({ pools }));
    const admin = await startAdminServer(
      { address: '127.0.0.1', port: 0, token },
      {
        snapshots: async () => [m.snapshot()],
        metrics: async () => ({ contentType: m.registry.contentType, text: await m.registry.metrics() }),
        draining: () => false,
        ...extra,
      },
    );
    const base = `http://127.0.0.1:${admin.address().port}`;
    return {
      base,
      proxyUrl: p.url,
      up,
      async [Symbol.asyncDispose]() {
        await admin.close();
        m.close();
        await p.proxy.close();
        await up[Symbol.asyncDispose]();
      },
    };
  }

  it('serves healthz, readyz, status and metrics', async () => {
    await using a = await withAdmin(undefined);
    await fetchText(`${a.proxyUrl}/`);
    expect(await fetchText(`${a.base}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(JSON.parse((await fetchText(`${a.base}/readyz`)).body)).toEqual({ ready: true, reasons: [] });
    const status = JSON.parse((await fetchText(`${a.base}/status`)).body);
    expect(status.pools[0].servers[0]).toMatchObject({ address: a.up.address, state: 'up', requests: 1, failures: 0 });
    const metrics = await fetchText(`${a.base}/metrics`);
    expect(metrics.headers['content-type']).toContain('text/plain');
    expect(metrics.body).toMatch(/^tiergate_proxy_requests_total\{pool="app",code="2xx"\} 1$/m);
    expect((await fetchText(`${a.base}/nothing`)).status).toBe(404);
    expect((await fetchText(`${a.base}/status`, { method: 'DELETE' })).status).toBe(405);
  });

  it('answers 401 without the bearer token and 200 with it', async () => {
    await using a = await withAdmin('t0ken');
    const denied = await fetchText(`${a.base}/healthz`);
    expect([denied.status, denied.headers['www-authenticate'], JSON.parse(denied.body).error.code]).toEqual([
      401,
      'Bearer realm="tiergate-admin"',
      'TG_ADMIN_UNAUTHORIZED',
    ]);
    expect((await fetchText(`${a.base}/healthz`, { headers: { authorization: 'Bearer t0ke' } })).status).toBe(401);
    expect((await fetchText(`${a.base}/healthz`, { headers: { authorization: 'Bearer t0ken' } })).status).toBe(200);
  });

  it('refuses a rebound Host and browser requests (403 TG_ADMIN_FORBIDDEN); what curl sends passes', async () => {
    let reloads = 0;
    await using a = await withAdmin(undefined, {
      reload: async () => {
        reloads++;
      },
    });
    const port = new URL(a.base).port;
    const rebound = await fetchText(`${a.base}/status`, { headers: { host: `evil.example:${port}` } });
    expect([rebound.status, JSON.parse(rebound.body).error.code]).toEqual([403, 'TG_ADMIN_FORBIDDEN']);
    const csrf = { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'text/plain' } };
    expect((await fetchText(`${a.base}/reload`, csrf)).status).toBe(403);
    expect((await fetchText(`${a.base}/status`, { headers: { origin: 'https://evil.example' } })).status).toBe(403);
    expect(reloads).toBe(0);
    // curl -X POST http://127.0.0.1:PORT/reload and curl http://localhost:PORT/status
    expect((await fetchText(`${a.base}/reload`, { method: 'POST' })).status).toBe(200);
    expect((await fetchText(`${a.base}/status`, { headers: { host: `localhost:${port}` } })).status).toBe(200);
    expect(reloads).toBe(1);
  });

  it('refuses to listen off loopback without a token', async () => {
    const source: AdminSource = { snapshots: async () => [], metrics: async () => ({ contentType: '', text: '' }), draining: () => false };
    await expect(startAdminServer({ address: '0.0.0.0', port: 0 }, source)).rejects.toMatchObject({ code: 'TG_CONFIG_INVALID' });
  });

  it('POST /reload answers the error code and message of a rejected reload, never a stack', async () => {
    let calls = 0;
    await using a = await withAdmin(undefined, {
      reload: async () => {
        calls++;
        if (calls === 1) throw new TgError('TG_CONFIG_INVALID', 'bad file');
        if (calls === 2) throw new Error('boom with internals');
      },
    });
    const r1 = await fetchText(`${a.base}/reload`, { method: 'POST' });
    expect([r1.status, JSON.parse(r1.body)]).toEqual([500, { error: { code: 'TG_CONFIG_INVALID', message: 'bad file' } }]);
    const r2 = await fetchText(`${a.base}/reload`, { method: 'POST' });
    expect([r2.status, JSON.parse(r2.body)]).toEqual([500, { error: { code: 'TG_ADMIN_FAILED', message: 'internal error' } }]);
    expect(await fetchText(`${a.base}/reload`, { method: 'POST' })).toMatchObject({ status: 200 });
    expect((await fetchText(`${a.base}/reload`)).status).toBe(405);
  });
});

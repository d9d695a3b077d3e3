import { describe, expect, it } from 'vitest';
import { type AdminStatus, mergeStatus, proxyStatusView, startAdminServer, type WorkerSnapshot } from '../src/index.ts';
import { fetchText } from './helpers.ts';

// The proxy admin's status page: the weight and last change /status now carries, the pure view the page
// renders, and GET / as the admin listener serves it (the browser side: test/status-page.test.ts).

function snap(worker: string, server: { healthy: boolean; effectiveWeight: number; lastChangeAt: number | null }): WorkerSnapshot {
  return {
    worker,
    pid: 1,
    uptimeS: 1,
    rssBytes: 1,
    status: {
      listeners: [{ address: '::1', port: 8080, family: 'IPv6', tls: true }],
      draining: false,
      inFlight: 0,
      connections: 3,
      pools: [
        {
          name: 'app',
          algorithm: 'least_conn',
          servers: [
            {
              address: 'a:1',
              active: 1,
              healthy: server.healthy,
              failed: false,
              fails: 0,
              effectiveWeight: server.effectiveWeight,
              check: {
                healthy: server.healthy,
                lastResult: { ok: server.healthy, detail: 'x' },
                lastChangeAt: server.lastChangeAt,
              },
            },
          ],
        },
      ],
    } as unknown as WorkerSnapshot['status'],
    servers: { 'app/a:1': { requests: 2, failures: 1, latencies: [10, 20] } },
    flags: { 'app/a:1': { down: false, backup: false } },
  };
}

describe('proxy status page', () => {
  it('/status carries the lowest effective weight and the latest health change over workers', () => {
    const s = mergeStatus(
      [
        snap('1', { healthy: true, effectiveWeight: 5, lastChangeAt: Date.UTC(2026, 0, 1) }),
        snap('2', { healthy: true, effectiveWeight: 2.5, lastChangeAt: Date.UTC(2026, 0, 2) }),
      ],
      false,
    );
    expect(s.pools[0]!.servers[0]).toMatchObject({ weight: 2.5, lastChange: '2026-01-02T00:00:00.000Z' });
    const never = mergeStatus([snap('1', { healthy: true, effectiveWeight: 1, lastChangeAt: null })], false);
    expect(never.pools[0]!.servers[0]!.lastChange).toBeUndefined();
  });

  it('renders a row per server: state, health, weight, counters, latency and last change', () => {
    const status = mergeStatus(
      [
        snap('1', { healthy: false, effectiveWeight: 1, lastChangeAt: Date.UTC(2026, 0, 2) }),
        snap('2', { healthy: true, effectiveWeight: 1, lastChangeAt: null }),
      ],
      false,
    );
    const view = proxyStatusView(status);
    expect(view.summary).toEqual(['serving', 'listeners: [::1]:8080 tls', 'workers: 2', 'in flight: 0', 'connections: 6']);
    expect(view.rows).toEqual([
      {
        key: 'app a:1',
        state: 'mixed',
        cells: {
          pool: 'app (least_conn)',
          server: 'a:1',
          state: 'mixed (unhealthy×1 up×1)',
          health: 'mixed',
          weight: '1',
          active: '2',
          requests: '4',
          errors: '2',
          latency: '10 / 20 / 20',
          lastCheck: 'failed: x',
          lastChange: '2026-01-02T00:00:00.000Z',
        },
      },
    ]);
    const down = proxyStatusView(mergeStatus([snap('1', { healthy: false, effectiveWeight: 1, lastChangeAt: 0 })], false));
    expect(down.rows.map((r) => [r.state, r.cells.state])).toEqual([['down', 'unhealthy']]);
    const draining = proxyStatusView({ ...status, draining: true } as AdminStatus);
    expect([draining.summary[0], draining.rows[0]!.state]).toEqual(['DRAINING', 'draining']);
    const server = status.pools[0]!.servers[0]!;
    const backup = { ...status, pools: [{ ...status.pools[0]!, servers: [{ ...server, state: 'up', backup: true }] }] };
    expect(proxyStatusView(backup).rows.map((r) => [r.state, r.cells.state])).toEqual([['backup', 'up backup']]);
  });

  it('GET / is the page, served without the token and with a strict CSP; /status still needs the token', async () => {
    await using admin = await startAdminServer(
      { address: '127.0.0.1', port: 0, token: 't0ken' },
      { snapshots: async () => [], draining: () => false },
    );
    const base = `http://127.0.0.1:${admin.address().port}`;
    const page = await fetch(`${base}/?refresh=1`);
    expect(page.status).toBe(200);
    expect(Object.fromEntries(page.headers)).toMatchObject({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    expect(page.headers.get('content-security-policy')).toMatch(
      /^default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+'; connect-src 'self';/,
    );
    const html = await page.text();
    expect(html).toContain('<title>tiergate proxy status</title>');
    expect(html).toContain('function proxyStatusView(status)');
    // Values reach the DOM through textContent only.
    expect(html).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    expect((await fetch(`${base}/status`)).status).toBe(401);
    expect((await fetch(`${base}/status`, { headers: { authorization: 'Bearer t0ken' } })).status).toBe(200);
    // The Host and Origin checks still guard the page: a rebound name or another site's page gets 403.
    const port = admin.address().port;
    expect((await fetchText(`${base}/`, { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    expect((await fetch(`${base}/`, { headers: { origin: 'https://evil.example' } })).status).toBe(403);
    expect((await fetch(`${base}/`, { method: 'POST' })).status).toBe(401);
  });
});

import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { startAdminServer } from '../src/admin-server.ts';
import type { Director, DirectorStatus, StatsJson } from '../src/reconciler.ts';
import { directorStatusView } from '../src/status-page.ts';

// The director admin's status page: the pure view of a fixed /status (no kernel), and the page as the real
// admin listener serves it on a loopback socket.

const stats = (conns: number): StatsJson => ({
  conns,
  inPkts: 0,
  outPkts: 0,
  inBytes: conns * 100,
  outBytes: conns * 1000,
  cps: 0,
  inPps: 0,
  outPps: 0,
  inBps: 0,
  outBps: 0,
});
const dest = { forward: 'route', weight: 1, activeConns: 0, inactConns: 0, draining: false, stats: stats(1) };

const STATUS: DirectorStatus = {
  director: 'd1',
  cycles: 3,
  lastCycle: { at: Date.UTC(2026, 0, 2, 3, 4, 5), kind: 'full', durationMs: 4, ops: 2, error: null },
  services: [
    {
      key: 'tcp:10.0.0.100:80',
      service: 'TCP 10.0.0.100:80',
      scheduler: 'wlc',
      persistent: false,
      timeout: 0,
      managed: true,
      stats: stats(9),
      destinations: [
        { ...dest, server: '10.0.0.11:80', healthy: true, weight: 3, activeConns: 5, inactConns: 2 },
        { ...dest, server: '10.0.0.12:80', healthy: false, weight: 0 },
        { ...dest, server: '10.0.0.13:80', healthy: true, draining: true },
        { ...dest, server: '10.0.0.14:80', healthy: true },
      ],
    },
    {
      key: 'tcp:10.0.0.200:53',
      service: 'TCP 10.0.0.200:53',
      scheduler: 'rr',
      persistent: true,
      timeout: 300,
      managed: false,
      stats: null,
      destinations: [{ ...dest, server: '10.0.0.21:53', healthy: null, stats: null }],
    },
  ],
  held: [
    {
      service: 'tcp:10.0.0.100:80',
      server: '10.0.0.14:80',
      phase: 'draining',
      after: 'keep',
      since: Date.UTC(2026, 0, 2),
      timeoutMs: 1000,
    },
    {
      service: 'tcp:10.0.0.100:80',
      server: '10.0.0.15:80',
      phase: 'removed',
      after: 'remove',
      since: Date.UTC(2026, 0, 2),
      timeoutMs: 1000,
    },
  ],
};

describe('director status page', () => {
  it('renders one row per real server with health, drain, weight and counters', () => {
    const view = directorStatusView(STATUS);
    expect(view.summary).toEqual(['director d1', 'cycles: 3', 'last cycle 2026-01-02T03:04:05.000Z full: ok, 2 ops in 4 ms']);
    expect(view.rows.map((r) => [r.key, r.state, r.cells.health, r.cells.drain])).toEqual([
      ['tcp:10.0.0.100:80 10.0.0.11:80', 'up', 'up', '-'],
      ['tcp:10.0.0.100:80 10.0.0.12:80', 'down', 'down', '-'],
      ['tcp:10.0.0.100:80 10.0.0.13:80', 'draining', 'up', 'draining'],
      ['tcp:10.0.0.100:80 10.0.0.14:80', 'draining', 'up', 'held (draining) since 2026-01-02T00:00:00.000Z'],
      ['tcp:10.0.0.200:53 10.0.0.21:53', 'up', 'unchecked', '-'],
      ['tcp:10.0.0.100:80 10.0.0.15:80', 'draining', undefined, 'held (removed) since 2026-01-02T00:00:00.000Z'],
    ]);
    expect(view.rows[0]!.cells).toEqual({
      service: 'TCP 10.0.0.100:80 wlc',
      server: '10.0.0.11:80',
      forward: 'Route',
      weight: '3',
      health: 'up',
      drain: '-',
      active: '5',
      inactive: '2',
      conns: '1',
      inBytes: '100',
      outBytes: '1000',
    });
    expect(view.rows[4]!.cells).toMatchObject({ service: 'TCP 10.0.0.200:53 rr persistent 300 (not managed)', conns: '-' });
    const failed = directorStatusView({
      ...STATUS,
      lastCycle: { ...STATUS.lastCycle!, error: { code: 'TG_IPVS_APPLY', message: 'EPERM' } },
    });
    expect(failed.summary[2]).toBe('last cycle 2026-01-02T03:04:05.000Z full: failed (TG_IPVS_APPLY: EPERM)');
  });

  it('serves GET / without the token (the page holds no data) with a strict CSP, while /status still needs it', async () => {
    const fixed = { readStatus: async () => STATUS } as unknown as Director;
    await using admin = await startAdminServer(fixed, { address: '127.0.0.1', port: 0, token: 's3cret' });
    const page = await fetch(`${admin.url}/`);
    expect(page.status).toBe(200);
    expect(Object.fromEntries(page.headers)).toMatchObject({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
    });
    expect(page.headers.get('content-security-policy')).toMatch(
      /^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'; style-src 'sha256-[A-Za-z0-9+/=]+'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/,
    );
    const html = await page.text();
    expect(html).toContain('<title>tiergate director status</title>');
    // The page runs the very function tested above: its embedded source gives the same rows here.
    const source = /const render = \((function directorStatusView[\s\S]*?)\);\nconst columns/.exec(html)?.[1];
    expect(source).toBeDefined();
    const embedded = runInNewContext(`(${source})`) as typeof directorStatusView;
    expect(JSON.parse(JSON.stringify(embedded(STATUS)))).toEqual(directorStatusView(STATUS));

    expect((await fetch(`${admin.url}/`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${admin.url}/status`)).status).toBe(401);
    const status = await fetch(`${admin.url}/status`, { headers: { authorization: 'Bearer s3cret' } });
    expect(await status.json()).toEqual(STATUS);
    // A page on another origin cannot read it either way.
    expect((await fetch(`${admin.url}/`, { headers: { origin: 'https://evil.example' } })).status).toBe(403);
  });
});

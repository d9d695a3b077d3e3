import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { request } from 'node:http';
import type { Server } from 'node:net';
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { startAdminServer } from '../src/admin-server.ts';
import { Director } from '../src/reconciler.ts';
import { MemoryStateStore } from '../src/state-store.ts';
import { FakeIpvs } from './fake-ipvs.ts';

// The director's admin listener on a real loopback socket, in front of a Director with no services over the
// in-memory table.

function director(): Director {
  return new Director({ name: 'd1', services: [], driver: new FakeIpvs(), state: new MemoryStateStore(), intervalMs: 3_600_000 });
}

function call(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject).end();
  });
}

describe('director admin listener', () => {
  it('needs the bearer token (compared in constant time, any length)', async () => {
    await using admin = await startAdminServer(director(), { address: '127.0.0.1', port: 0, token: 's3cret' });
    expect((await call(`${admin.url}/status`)).status).toBe(401);
    expect((await call(`${admin.url}/status`, { headers: { authorization: 'Bearer s3cre' } })).status).toBe(401);
    expect((await call(`${admin.url}/status`, { headers: { authorization: 'Bearer s3cret-and-more' } })).status).toBe(401);
    expect((await call(`${admin.url}/status`, { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
    // `bearer` in any case and extra spaces, as RFC 9110 §11.1 allows for the scheme.
    expect((await call(`${admin.url}/status`, { headers: { authorization: 'bearer  s3cret' } })).status).toBe(200);
  });

  it('refuses a rebound Host and a browser POST /reconcile (403); curl-like requests pass', async () => {
    await using admin = await startAdminServer(director(), { address: '127.0.0.1', port: 0 });
    const port = new URL(admin.url).port;
    const rebound = await call(`${admin.url}/status`, { headers: { host: `evil.example:${port}` } });
    expect([rebound.status, JSON.parse(rebound.body).code]).toEqual([403, 'TG_ADMIN_FORBIDDEN']);
    expect((await call(`${admin.url}/reconcile`, { method: 'POST', headers: { origin: 'https://evil.example' } })).status).toBe(403);
    expect((await call(`${admin.url}/reconcile`, { method: 'POST' })).status).toBe(200);
    expect((await call(`${admin.url}/status`, { headers: { host: `localhost:${port}` } })).status).toBe(200);
  });

  it('serves /metrics, or 404 with metrics: false (telemetry.metrics.enabled: false) while /status still answers', async () => {
    await using on = await startAdminServer(director(), { address: '127.0.0.1', port: 0 });
    expect((await call(`${on.url}/metrics`)).status).toBe(200);
    await using off = await startAdminServer(director(), { address: '127.0.0.1', port: 0, metrics: false });
    expect(await call(`${off.url}/metrics`)).toEqual({
      status: 404,
      body: '{"error":"metrics are off (telemetry.metrics.enabled: false)"}\n',
    });
    expect((await call(`${off.url}/status`)).status).toBe(200);
  });

  it('refuses to listen off loopback without a token', async () => {
    await expect(startAdminServer(director(), { address: '0.0.0.0', port: 0 })).rejects.toMatchObject({ code: 'TG_CONFIG_INVALID' });
  });

  it('an accept error after listen() is logged, not an uncaught exception', async () => {
    const servers: Server[] = [];
    const onEnd = (m: unknown) => servers.push((m as { server: Server }).server);
    subscribe('tracing:net.server.listen:asyncEnd', onEnd);
    const warnings: string[] = [];
    const admin = await startAdminServer(director(), { address: '127.0.0.1', port: 0 }, { warn: (_o, msg) => warnings.push(msg ?? '') });
    unsubscribe('tracing:net.server.listen:asyncEnd', onEnd);
    await using _ = admin;
    // What libuv calls when accept() fails and it cannot drop the connection itself (see the proxy's test).
    const handle = (servers[0] as unknown as { _handle: { onconnection(err: number): void } })._handle;
    handle.onconnection(-constants.errno.EMFILE);
    handle.onconnection(-constants.errno.EMFILE);
    expect(warnings).toEqual(['admin accept failed; still listening', 'admin accept failed; still listening']);
    expect((await call(`${admin.url}/status`)).status).toBe(200);
  });
});

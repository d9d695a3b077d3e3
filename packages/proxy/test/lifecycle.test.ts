import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { startProxy } from '../src/index.ts';
import { fetchText, proxySection, server, startTestProxy, startUpstream } from './helpers.ts';

describe('lifecycle', () => {
  it('close() lets a request in flight finish, then refuses connections', async () => {
    await using slow = await startUpstream((req, res) => {
      req.resume();
      setTimeout(() => res.end('late'), 300);
    });
    const p = await startTestProxy({ pools: { app: { servers: [server(slow)] } } });
    const inFlight = fetchText(`${p.url}/`);
    while (slow.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(p.proxy.status().inFlight).toBe(1);
    const port = p.proxy.addresses()[0]!.port;
    const closing = p.proxy.close();
    // The admin's /status and /metrics ask through a drain: the listeners are closed, their addresses still known.
    await new Promise((r) => setTimeout(r, 50));
    const draining = p.proxy.status();
    expect([draining.draining, draining.inFlight, draining.listeners.map((l) => l.port)]).toEqual([true, 1, [port]]);
    const r = await inFlight;
    expect([r.status, r.body, r.headers.connection]).toEqual([200, 'late', 'close']);
    await closing;
    await expect(fetchText(`${p.url}/`)).rejects.toThrow();
    await p.proxy.close();
  });

  it('reports the real port of a port-0 listener and rejects a taken port with TG_PROXY_LISTEN', async () => {
    await using up = await startUpstream(() => {});
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const port = p.proxy.addresses()[0]!.port;
    expect(port).toBeGreaterThan(0);
    const section = proxySection({ listeners: [{ address: '127.0.0.1', port }], pools: { app: { servers: [server(up)] } } });
    const err = await startProxy(section).catch((e: unknown) => e);
    expect(isTgError(err, 'TG_PROXY_LISTEN')).toBe(true);
  });

  it('status() lists pools and server state for the admin endpoint', async () => {
    await using up = await startUpstream(() => {});
    await using p = await startTestProxy({ pools: { app: { algorithm: 'least_conn', servers: [server(up, { weight: 3 })] } } });
    const s = p.proxy.status();
    expect(s.pools).toEqual([
      expect.objectContaining({
        name: 'app',
        algorithm: 'least_conn',
        servers: [expect.objectContaining({ address: up.address, active: 0, healthy: true })],
      }),
    ]);
    expect(s.draining).toBe(false);
  });
});

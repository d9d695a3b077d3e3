import { Agent } from 'undici';
import { describe, expect, it } from 'vitest';
import { REQUEST_CHANNEL } from '../src/channels.ts';
import { collect, fetchText, proxySection, server, startTestProxy, startUpstream } from './helpers.ts';

// `proxy.monitor_uri` and failHealthCheck(): what a director's http check of a proxy node sees (docs/proxy.md,
// Leaving), against a real upstream on loopback.

describe('monitor_uri', () => {
  it('is answered by the proxy itself (with or without a query), never forwarded or logged; other paths are', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.end(`app ${req.url}`);
    });
    await using p = await startTestProxy({ monitor_uri: '/-/health', pools: { app: { servers: [server(up)] } } });
    using events = collect(REQUEST_CHANNEL);
    for (const path of ['/-/health', '/-/health?from=lb1']) {
      const r = await fetchText(`${p.url}${path}`, { headers: { host: 'any.example' } });
      expect([r.status, r.body, r.headers['cache-control'], r.headers.connection]).toEqual([200, 'ok\n', 'no-store', 'keep-alive']);
    }
    expect(up.seen).toHaveLength(0);
    expect(events).toHaveLength(0);
    expect((await fetchText(`${p.url}/-/healthx`)).body).toBe('app /-/healthx');
    expect((await fetchText(`${p.url}/-/health/x`)).body).toBe('app /-/health/x');
    expect(events).toHaveLength(2);
  });

  it('failHealthCheck(true): 503 there, requests still proxied with Connection: close; false undoes it', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.end('app');
    });
    await using p = await startTestProxy({ monitor_uri: '/-/health', pools: { app: { servers: [server(up)] } } });
    p.proxy.failHealthCheck(true);
    const failing = await fetchText(`${p.url}/-/health`);
    expect([failing.status, failing.body, failing.headers.connection]).toEqual([503, 'draining\n', 'close']);
    expect(p.proxy.status().draining).toBe(true);
    const served = await fetchText(`${p.url}/`);
    expect([served.status, served.body, served.headers.connection]).toEqual([200, 'app', 'close']);
    p.proxy.failHealthCheck(false);
    expect((await fetchText(`${p.url}/-/health`)).status).toBe(200);
    const again = await fetchText(`${p.url}/`);
    expect([again.status, again.headers.connection]).toEqual([200, 'keep-alive']);
    expect(p.proxy.status().draining).toBe(false);
  });

  it('a reload changes it; without it the path is an ordinary request; during close() it answers 503', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.end('app');
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } }, undefined, { idleCloseGraceMs: 1000 });
    expect((await fetchText(`${p.url}/-/health`)).body).toBe('app');
    await p.proxy.reload(proxySection({ monitor_uri: '/-/health', pools: { app: { servers: [server(up)] } } }));
    expect((await fetchText(`${p.url}/-/health`)).body).toBe('ok\n');
    // A keep-alive connection open when close() begins still gets answers during the grace: 503 there.
    await using agent = Object.assign(new Agent({ connections: 1 }), { [Symbol.asyncDispose]: () => agent.close() });
    expect((await fetchText(`${p.url}/`, { dispatcher: agent })).status).toBe(200);
    const closing = p.proxy.close();
    const r = await fetchText(`${p.url}/-/health`, { dispatcher: agent });
    expect([r.status, r.headers.connection]).toEqual([503, 'close']);
    p.proxy.failHealthCheck(false); // close() keeps it failing
    await closing;
  });

  it('is a path: the schema refuses a query or a relative path, naming the key', () => {
    expect(() => proxySection({ monitor_uri: '/health?x=1', pools: { app: { servers: [{ address: '127.0.0.1:1' }] } } })).toThrow(
      /proxy\.monitor_uri/,
    );
    expect(() => proxySection({ monitor_uri: 'health', pools: { app: { servers: [{ address: '127.0.0.1:1' }] } } })).toThrow(
      /must start with \//,
    );
  });
});

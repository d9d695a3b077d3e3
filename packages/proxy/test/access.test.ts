import { describe, expect, it } from 'vitest';
import { clientAgent, fetchText, named, proxySection, rawExchange, server, startTestProxy, startUpstream } from './helpers.ts';

/** `routes[].access`: nginx `allow` / `deny` in a `location`, checked against the client address in order. */

describe('routes[].access (nginx allow/deny)', () => {
  it('the first rule that matches decides; no rule matching allows; other routes are not affected', async () => {
    await using up = await startUpstream(named('app'));
    await using p = await startTestProxy({
      routes: [
        { path: '/admin', pool: 'app', access: [{ allow: '127.0.0.2' }, { deny: '127.0.0.0/8' }, { allow: 'all' }] },
        { path: '/ops', pool: 'app', access: [{ deny: '10.0.0.0/8' }] },
        { path: '/', pool: 'app' },
      ],
      pools: { app: { servers: [server(up)] } },
    });
    // Clients bound to two loopback addresses (any 127.0.0.0/8 address is this machine's).
    await using one = clientAgent('127.0.0.1');
    await using two = clientAgent('127.0.0.2');
    {
      const denied = await fetchText(`${p.url}/admin/users`, { dispatcher: one });
      expect(denied.status).toBe(403);
      expect(denied.headers['x-tiergate-error']).toBe('TG_PROXY_FORBIDDEN');
      expect((await fetchText(`${p.url}/admin/users`, { dispatcher: two })).status).toBe(200);
      expect((await fetchText(`${p.url}/ops`, { dispatcher: one })).status).toBe(200);
      expect((await fetchText(`${p.url}/`, { dispatcher: one })).status).toBe(200);
      expect(up.seen.map((s) => s.url)).toEqual(['/admin/users', '/ops', '/']);
    }
  });

  it('checks the client address after trusted_proxies (nginx realip), not the peer', async () => {
    await using up = await startUpstream(named('app'));
    await using p = await startTestProxy({
      trusted_proxies: ['127.0.0.1'],
      routes: [{ path: '/', pool: 'app', access: [{ allow: '10.0.0.0/8' }, { deny: 'all' }] }],
      pools: { app: { servers: [server(up)] } },
    });
    expect((await fetchText(`${p.url}/`, { headers: { 'x-forwarded-for': '10.1.2.3' } })).status).toBe(200);
    expect((await fetchText(`${p.url}/`, { headers: { 'x-forwarded-for': '192.0.2.7' } })).status).toBe(403);
    expect((await fetchText(`${p.url}/`)).status).toBe(403);
  });

  it('a denied request with a body is answered without reading it, and the connection closes', async () => {
    await using up = await startUpstream(named('app'));
    await using p = await startTestProxy({
      routes: [{ path: '/', pool: 'app', access: [{ deny: 'all' }] }],
      pools: { app: { servers: [server(up)] } },
    });
    const raw = await rawExchange(
      p.proxy.addresses()[0]!.port,
      'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: t\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 403 /);
    expect(raw).toMatch(/\r\nconnection: close\r\n/i);
    expect(raw.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(up.seen).toHaveLength(0);
  });
});

describe('access rules, redirects and response rules on reload', () => {
  it('a reload swaps them for the requests that start afterwards', async () => {
    await using up = await startUpstream(named('app'));
    const config = (route: Record<string, unknown>) => ({
      routes: [{ path: '/', pool: 'app', ...route }],
      pools: { app: { servers: [server(up)] } },
    });
    await using p = await startTestProxy(config({ access: [{ deny: 'all' }] }));
    expect((await fetchText(`${p.url}/`)).status).toBe(403);
    await p.proxy.reload(proxySection(config({ response_headers: { set: { 'X-Gen': '2' } } })));
    const second = await fetchText(`${p.url}/`);
    expect([second.status, second.headers['x-gen']]).toEqual([200, '2']);
    await p.proxy.reload(proxySection(config({ redirect: { scheme: 'https' } })));
    expect((await fetchText(`${p.url}/`)).status).toBe(301);
  });
});

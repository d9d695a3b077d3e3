import { describe, expect, it } from 'vitest';
import { RouteTable, stripPort } from '../src/index.ts';
import { fetchText, named, server, startTestProxy, startUpstream } from './helpers.ts';

describe('RouteTable', () => {
  const table = new RouteTable([
    { host: 'api.example.com', path: '/', value: 'api-root' },
    { host: 'api.example.com', path: '/v2', value: 'api-v2' },
    { host: '*.example.com', path: '/', value: 'wild' },
    { host: '*.b.example.com', path: '/', value: 'wild-b' },
    { path: '/', value: 'default' },
    { path: '/static/', value: 'static' },
  ]);

  it.each([
    ['api.example.com', '/x', 'api-root'],
    ['API.Example.COM:8443', '/v2/users', 'api-v2'],
    ['api.example.com', '/v2', 'api-v2'],
    ['www.example.com', '/', 'wild'],
    ['x.b.example.com', '/', 'wild-b'],
    ['example.com', '/', 'default'],
    ['other.org', '/static/app.js', 'static'],
    [undefined, '/', 'default'],
    ['api.example.com.', '/v2', 'api-v2'],
  ])('%s %s → %s', (host, path, want) => {
    expect(table.match(host, path)).toBe(want);
  });

  it('falls through to a less specific host group when no prefix matches', () => {
    const t = new RouteTable([
      { host: 'a.test', path: '/only', value: 'a' },
      { path: '/', value: 'default' },
    ]);
    expect(t.match('a.test', '/only/x')).toBe('a');
    expect(t.match('a.test', '/other')).toBe('default');
    expect(new RouteTable([{ host: 'a.test', path: '/', value: 1 }]).match('b.test', '/')).toBeUndefined();
  });

  it('refuses a route host with a port: the table serves every listener, so it could not be honoured', () => {
    for (const host of ['api.example.com:8080', '*.example.com:443'])
      expect(() => new RouteTable([{ host, path: '/', value: 1 }])).toThrow(
        expect.objectContaining({ code: 'TG_CONFIG_INVALID', message: expect.stringContaining('takes no port') }),
      );
  });

  it('strips ports from names and bracketed IPv6 literals', () => {
    expect(stripPort('example.com:80')).toBe('example.com');
    expect(stripPort('[::1]:8080')).toBe('[::1]');
    expect(stripPort('[::1]')).toBe('[::1]');
    expect(stripPort('example.com')).toBe('example.com');
  });
});

describe('routing end to end', () => {
  it('sends requests by host and longest prefix, 404 with TG_PROXY_NO_ROUTE otherwise', async () => {
    await using a = await startUpstream(named('a'));
    await using b = await startUpstream(named('b'));
    await using p = await startTestProxy({
      routes: [
        { host: 'a.test', path: '/', pool: 'a' },
        { host: '*.b.test', path: '/api', pool: 'b' },
      ],
      pools: { a: { servers: [server(a)] }, b: { servers: [server(b)] } },
    });
    // The Host header's port is ignored, whichever it is (nginx server_name): the route serves every listener.
    for (const host of ['A.TEST:1234', 'a.test:80', 'a.test', 'a.test.:8443'])
      expect((await fetchText(`${p.url}/`, { headers: { host } })).body, host).toBe('a');
    expect((await fetchText(`${p.url}/api/x`, { headers: { host: 'x.b.test' } })).body).toBe('b');
    const miss = await fetchText(`${p.url}/other`, { headers: { host: 'x.b.test' } });
    expect(miss.status).toBe(404);
    expect(miss.headers['x-tiergate-error']).toBe('TG_PROXY_NO_ROUTE');
    expect(miss.body).toBe('404 Not Found (TG_PROXY_NO_ROUTE)\n');
  });

  it('refuses to start with a route host that carries a port, saying where ports belong', async () => {
    await using a = await startUpstream(named('a'));
    const routes = [{ host: 'a.test:8080', path: '/', pool: 'a' }];
    await expect(startTestProxy({ routes, pools: { a: { servers: [server(a)] } } })).rejects.toMatchObject({
      code: 'TG_CONFIG_INVALID',
      message: expect.stringContaining('proxy.routes[0].host: a route host takes no port'),
    });
  });

  it('with no routes the single pool takes everything', async () => {
    await using a = await startUpstream(named('a'));
    await using p = await startTestProxy({ pools: { only: { servers: [server(a)] } } });
    expect((await fetchText(`${p.url}/anything?q=1`, { headers: { host: 'whatever.test' } })).body).toBe('a');
    expect(a.seen[0]!.url).toBe('/anything?q=1');
  });
});

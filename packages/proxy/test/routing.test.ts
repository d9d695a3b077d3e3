import { describe, expect, it } from 'vitest';
import { RouteTable, stripPort } from '../src/index.ts';
import { parseTarget } from '../src/request-target.ts';
import { fetchText, named, rawExchange, server, startTestProxy, startUpstream } from './helpers.ts';

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

  it('refuses a route path that no normalised request path can match, saying why', async () => {
    await using a = await startUpstream(named('a'));
    for (const [path, why] of [
      ['/a%20b', 'write the path decoded'],
      ['/a//b', 'never matches'],
      ['/a/../b', 'never matches'],
      ['/a/./', 'never matches'],
      ['/a/..', 'never matches'],
    ])
      await expect(startTestProxy({ routes: [{ path, pool: 'a' }], pools: { a: { servers: [server(a)] } } }), path).rejects.toMatchObject({
        code: 'TG_CONFIG_INVALID',
        message: expect.stringContaining(`proxy.routes[0].path: ${why}`),
      });
    // Segments that only start with dots are ordinary names.
    await using p = await startTestProxy({
      routes: [
        { path: '/.well-known/', pool: 'a' },
        { path: '/a..b', pool: 'a' },
      ],
      pools: { a: { servers: [server(a)] } },
    });
    expect((await fetchText(`${p.url}/.well-known/x`)).status).toBe(200);
  });

  it('with no routes the single pool takes everything', async () => {
    await using a = await startUpstream(named('a'));
    await using p = await startTestProxy({ pools: { only: { servers: [server(a)] } } });
    expect((await fetchText(`${p.url}/anything?q=1`, { headers: { host: 'whatever.test' } })).body).toBe('a');
    expect(a.seen[0]!.url).toBe('/anything?q=1');
  });
});

describe('parseTarget: routes match the normalised path', () => {
  // [target, path routes match, target sent upstream by a `raw` route, by a `normalized` route]; 400 = refused.
  it.each([
    ['/a/b?x=1', '/a/b', '/a/b?x=1', '/a/b?x=1'],
    ['/pub/../admin', '/admin', '/admin', '/admin'],
    ['/pub/%2e%2e/admin', '/admin', '/admin', '/admin'],
    ['/pub%2F..%2Fadmin', '/admin', '/admin', '/admin'],
    // A WHATWG URL parser resolves these to /admin while nginx's rules give /pub/admin: sent normalised.
    ['/pub%2Fx/../admin', '/pub/admin', '/pub/admin', '/pub/admin'],
    ['//pub/admin', '/pub/admin', '/pub/admin', '/pub/admin'],
    ['/a/b//../../c?q', '/c', '/c?q', '/c?q'],
    ['/a//b', '/a/b', '/a/b', '/a/b'],
    ['/a/./b/..', '/a/', '/a/', '/a/'],
    // Escapes alone: the raw target reads the same decoded or not, so a raw route keeps the client's bytes.
    ['/a%2Fb', '/a/b', '/a%2Fb', '/a/b'],
    ['/a%20b?q=%2e%2e', '/a b', '/a%20b?q=%2e%2e', '/a%20b?q=%2e%2e'],
    ['/%C3%A9t%C3%A9', '/été', '/%C3%A9t%C3%A9', '/%C3%A9t%C3%A9'],
    ['/%FF', '/\uFFFD', '/%FF', '/%FF'],
    ['/%3F%23%25', '/?#%', '/%3F%23%25', '/%3F%23%25'],
    ['/.well-known/x', '/.well-known/x', '/.well-known/x', '/.well-known/x'],
    ['/a;b/...', '/a;b/...', '/a;b/...', '/a;b/...'],
    // A backslash separates for WHATWG URL parsers and Windows servers: never sent raw.
    ['/a\\b', '/a\\b', '/a%5Cb', '/a%5Cb'],
    ['/a%5Cb', '/a\\b', '/a%5Cb', '/a%5Cb'],
    ['/pub#/../admin', '/pub', '/pub', '/pub'],
    // nginx answers 400 to these.
    ['/..', 400],
    ['/pub/../../x', 400],
    ['/pub/%2e%2e/%2E%2E/x', 400],
    ['/a%zz', 400],
    ['/a%2', 400],
    ['/a%00b', 400],
    // tiergate also refuses a segment some upstream still reads as a dot segment after normalisation.
    ['/pub/..;/admin', 400],
    ['/pub/.;x/admin', 400],
    ['/pub\\..\\admin', 400],
    ['/pub/%5C..%5Cadmin', 400],
    // Not origin-form.
    ['*', 400],
    ['http://a.test/', 400],
  ])('%s', (target, path, raw?, normalized?) => {
    const t = parseTarget(target);
    if (path === 400) expect(t).toBeUndefined();
    else expect({ path: t?.path, raw: t?.rawSafe ? target : t?.normalized, normalized: t?.normalized }).toEqual({ path, raw, normalized });
  });
});

describe('routing on the normalised path, end to end', () => {
  const get = (port: number, target: string) => rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n`);
  const status = (reply: string) => Number(reply.slice(9, 12));

  it('a dot segment cannot take a route that the resolved path does not match', async () => {
    await using pub = await startUpstream(named('pub'));
    await using internal = await startUpstream(named('internal'));
    await using p = await startTestProxy({
      routes: [
        { path: '/pub/', pool: 'pub' },
        { path: '/internal/', pool: 'internal' },
      ],
      pools: { pub: { servers: [server(pub)] }, internal: { servers: [server(internal)] } },
    });
    const port = p.proxy.addresses()[0]!.port;
    for (const target of ['/pub/../admin', '/pub/%2e%2e/admin', '/pub%2F..%2Fadmin', '/pub/./../admin'])
      expect(status(await get(port, target)), target).toBe(404);
    for (const target of ['/..', '/pub/../../admin', '/pub/%2e%2e/%2e%2e/admin', '/pub/..;/internal/x', '/pub/a%zz'])
      expect(status(await get(port, target)), target).toBe(400);
    expect(pub.seen).toEqual([]);
    // Resolved into another route: that route's pool gets it, as the path it matched.
    expect(status(await get(port, '/pub/../internal/x?q=1'))).toBe(200);
    expect(internal.seen.map((r) => r.url)).toEqual(['/internal/x?q=1']);
    expect(pub.seen).toEqual([]);
  });

  it('forward_path: raw sends an unambiguous target as it came, normalized sends the path routing matched', async () => {
    await using up = await startUpstream(named('up'));
    await using p = await startTestProxy({
      routes: [
        { path: '/raw/', pool: 'app' },
        { path: '/norm/', pool: 'app', forward_path: 'normalized' },
      ],
      pools: { app: { servers: [server(up)] } },
    });
    const port = p.proxy.addresses()[0]!.port;
    for (const target of ['/raw/a%2Fb?x=%2F', '/raw//a/./b', '/norm/a%2Fb?x=%2F', '/norm/%7e%41'])
      expect(status(await get(port, target)), target).toBe(200);
    expect(up.seen.map((r) => r.url)).toEqual(['/raw/a%2Fb?x=%2F', '/raw/a/b', '/norm/a/b?x=%2F', '/norm/~A']);
  });
  it('rewrite_prefix replaces the route path in the normalised target (non-ASCII routes too); a path that matched only through U+FFFD is refused', async () => {
    await using up = await startUpstream(named('up'));
    await using p = await startTestProxy({
      routes: [
        { path: '/été/', pool: 'app', rewrite_prefix: '/summer/' },
        { path: '/\uFFFD/', pool: 'app', rewrite_prefix: '/x/' },
        { path: '/plain/', pool: 'app', rewrite_prefix: '/' },
      ],
      pools: { app: { servers: [server(up)] } },
    });
    const port = p.proxy.addresses()[0]!.port;
    for (const target of ['/%C3%A9t%C3%A9/a%20b?q=%C3%A9', '/plain/a/b?c', '/plain/'])
      expect(status(await get(port, target)), target).toBe(200);
    expect(up.seen.map((r) => r.url)).toEqual(['/summer/a%20b?q=%C3%A9', '/a/b?c', '/']);
    // `%FF` is not UTF-8: the route matched it as U+FFFD, but its bytes are not the route's.
    expect(status(await get(port, '/%FF/a'))).toBe(400);
    expect(up.seen).toHaveLength(3);
  });
});

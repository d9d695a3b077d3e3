import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestEvent } from '../src/channels.ts';
import { certFiles, h2client, h2request } from './h2-helpers.ts';
import { collect, fetchText, named, rawExchange, server, startTestProxy, startUpstream } from './helpers.ts';

/**
 * `routes[].redirect`: `scheme` redirects requests that came over the other scheme and proxies the rest
 * (HAProxy `redirect scheme https unless { ssl_fc }`); `prefix` answers every request of its route with a
 * fixed origin before the request's path and query (nginx `return 301 https://www.example.com$request_uri`).
 */

let tls: Awaited<ReturnType<typeof certFiles>>;
beforeAll(async () => {
  tls = await certFiles();
});
afterAll(() => tls[Symbol.asyncDispose]());

/** One raw request over TLS to 127.0.0.1:port; the whole response as text. */
function tlsRaw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => s.write(text));
    let got = '';
    s.setEncoding('latin1').on('data', (d: string) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
}

describe('routes[].redirect.scheme', () => {
  it('redirects plain-HTTP requests to https with host, path and query kept; requests over TLS are proxied', async () => {
    await using up = await startUpstream(named('app'));
    await using p = await startTestProxy({
      listeners: [
        { address: '127.0.0.1', port: 0 },
        { address: '127.0.0.1', port: 0, tls: { cert: tls.cert, key: tls.key } },
      ],
      routes: [{ path: '/', pool: 'app', redirect: { scheme: 'https' } }],
      pools: { app: { servers: [server(up)] } },
    });
    const [plain, secure] = p.proxy.addresses();
    const res = await fetchText(`http://127.0.0.1:${plain!.port}/a/b?c=1&d=%2F`, { headers: { host: 'Shop.Example:8080' } });
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe('https://Shop.Example/a/b?c=1&d=%2F');
    expect(res.headers['x-request-id']).toMatch(/./);
    expect(up.seen).toHaveLength(0);
    const over = await tlsRaw(secure!.port, 'GET /a HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n');
    expect(over).toMatch(/^HTTP\/1\.1 200 /);
    expect(over.endsWith('app')).toBe(true);
    expect(up.seen).toHaveLength(1);
  });

  it('port, status and IPv6 hosts; HTTP/1.0 without Host takes the address the client reached', async () => {
    await using up = await startUpstream(named('app'));
    await using p = await startTestProxy({
      routes: [{ path: '/', pool: 'app', redirect: { scheme: 'https', port: 8443, status: 308 } }],
      pools: { app: { servers: [server(up)] } },
    });
    const port = p.proxy.addresses()[0]!.port;
    const v6 = await rawExchange(port, 'GET /x HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nConnection: close\r\n\r\n');
    expect(v6).toMatch(/^HTTP\/1\.1 308 Permanent Redirect\r\n/);
    expect(v6).toMatch(/\r\nlocation: https:\/\/\[2001:db8::1\]:8443\/x\r\n/i);
    const old = await rawExchange(port, 'GET /y HTTP/1.0\r\n\r\n');
    expect(old).toMatch(/\r\nlocation: https:\/\/127\.0\.0\.1:8443\/y\r\n/i);
  });

  it('believes X-Forwarded-Proto from a trusted peer only (a TLS terminator in front)', async () => {
    await using up = await startUpstream(named('app'));
    const config = (trusted: string[]) => ({
      trusted_proxies: trusted,
      routes: [{ path: '/', pool: 'app', redirect: { scheme: 'https' } }],
      pools: { app: { servers: [server(up)] } },
    });
    {
      await using p = await startTestProxy(config(['127.0.0.1']));
      expect((await fetchText(`${p.url}/`, { headers: { 'x-forwarded-proto': 'https' } })).status).toBe(200);
      expect((await fetchText(`${p.url}/`, { headers: { 'x-forwarded-proto': 'http' } })).status).toBe(301);
      expect((await fetchText(`${p.url}/`)).status).toBe(301);
    }
    {
      await using p = await startTestProxy(config([]));
      expect((await fetchText(`${p.url}/`, { headers: { 'x-forwarded-proto': 'https' } })).status).toBe(301);
    }
  });
});

describe('redirects to HTTP/2 clients', () => {
  it('take the Location from :authority and answer a request with a body without a connection field', async () => {
    await using up = await startUpstream(named('app'));
    await using p = await startTestProxy({
      listeners: [{ address: '127.0.0.1', port: 0, http2: true }],
      routes: [{ path: '/', pool: 'app', redirect: { scheme: 'https' } }],
      pools: { app: { servers: [server(up)] } },
    });
    await using c = h2client(`http://127.0.0.1:${p.proxy.addresses()[0]!.port}`);
    const get = await h2request(c, { ':path': '/a?b=1', ':authority': 'shop.example:8080' });
    expect(get.status).toBe(301);
    expect(get.headers.location).toBe('https://shop.example/a?b=1');
    const post = await h2request(c, { ':method': 'POST', ':path': '/form', ':authority': 'shop.example' }, 'x=1');
    expect(post.status).toBe(301);
    expect(post.headers.connection).toBeUndefined();
    expect((await h2request(c, { ':path': '/again', ':authority': 'shop.example' })).status).toBe(301);
    expect(up.seen).toHaveLength(0);
  });
});

describe('routes[].redirect.prefix', () => {
  it('answers every request of its route with the prefix before path and query; other routes are proxied; logged as such', async () => {
    await using up = await startUpstream(named('www'));
    await using p = await startTestProxy({
      routes: [
        { host: 'example.com', redirect: { prefix: 'https://www.example.com', status: 302 } },
        { path: '/', pool: 'app' },
      ],
      pools: { app: { servers: [server(up)] } },
    });
    using events = collect<RequestEvent>('tiergate:proxy:request');
    const res = await fetchText(`${p.url}/cart?item=7`, { headers: { host: 'example.com' } });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('https://www.example.com/cart?item=7');
    expect(res.body).toBe('302 Found: https://www.example.com/cart?item=7\n');
    expect((await fetchText(`${p.url}/cart`, { headers: { host: 'www.example.com' } })).body).toBe('www');
    expect(up.seen.map((s) => s.headers.host)).toEqual(['www.example.com']);
    expect(events.find((e) => e.status === 302)).toMatchObject({ status: 302, pool: undefined, url: '/cart?item=7' });
  });

  it('a request with a body gets the redirect and the connection closes (the body is never read)', async () => {
    await using up = await startUpstream(named('app'));
    await using p = await startTestProxy({
      routes: [{ path: '/', redirect: { prefix: 'https://elsewhere.example' } }],
      pools: { app: { servers: [server(up)] } },
    });
    const raw = await rawExchange(
      p.proxy.addresses()[0]!.port,
      'POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello GET /next HTTP/1.1\r\nHost: t\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 301 Moved Permanently\r\n/);
    expect(raw).toMatch(/\r\nconnection: close\r\n/i);
    expect(raw.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(up.seen).toHaveLength(0);
  });
});

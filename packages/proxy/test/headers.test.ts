import { request as httpRequest } from 'node:http';
import { toBlockList } from '@tiergate/config';
import { describe, expect, it } from 'vitest';
import { realClientAddress } from '../src/index.ts';
import { h2client, h2request } from './h2-helpers.ts';
import { clientAgent, fetchText, rawExchange, server, startTestProxy, startUpstream } from './helpers.ts';

/** An upstream answering with the request headers it received (raw list, JSON). */
function echo() {
  return startUpstream((req, res) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.rawHeaders));
  });
}

function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}
/** The raw response header list (name case and repeats as sent) of one GET. */
function responseRaw(url: string): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    httpRequest(url, (res) => {
      res.resume();
      res.on('end', () => resolve(res.rawHeaders));
    })
      .on('error', reject)
      .end();
  });
}
const get = (raw: [string, string][], name: string) => raw.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);

describe('realClientAddress (nginx realip semantics)', () => {
  const trusted = toBlockList(['10.0.0.0/8', '127.0.0.1', 'fd00::/8']);
  it.each([
    ['untrusted peer: headers ignored', '192.0.2.1', '1.2.3.4', true, '192.0.2.1'],
    ['trusted peer, recursive: first untrusted from the right', '10.0.0.1', '1.2.3.4, 5.6.7.8, 10.0.0.2', true, '5.6.7.8'],
    ['trusted peer, not recursive: right-most', '10.0.0.1', '1.2.3.4, 10.0.0.2', false, '10.0.0.2'],
    ['all trusted: left-most', '10.0.0.1', '10.1.1.1, 10.0.0.2', true, '10.1.1.1'],
    ['garbage stops the walk', '10.0.0.1', 'evil, 10.0.0.2', true, '10.0.0.2'],
    ['IPv4-mapped IPv6 peer matches IPv4 ranges', '::ffff:127.0.0.1', '203.0.113.9', true, '203.0.113.9'],
    ['IPv6 trusted', 'fd00::1', '2001:db8::5', true, '2001:db8::5'],
  ])('%s', (_name, peer, xff, recursive, want) => {
    const p = peer.startsWith('::ffff:') ? peer.slice(7) : peer;
    expect(realClientAddress(p, trusted, recursive, xff, undefined)).toBe(want);
  });
  it('uses X-Real-IP from a trusted peer when there is no X-Forwarded-For', () => {
    expect(realClientAddress('10.0.0.1', trusted, true, undefined, '198.51.100.7')).toBe('198.51.100.7');
    expect(realClientAddress('192.0.2.1', trusted, true, undefined, '198.51.100.7')).toBe('192.0.2.1');
  });
});

describe('forwarding headers', () => {
  it('sets X-Real-IP, X-Forwarded-* and keeps Host; an untrusted client cannot spoof them', async () => {
    await using up = await echo();
    await using p = await startTestProxy({ trusted_proxies: ['127.0.0.1'], pools: { app: { servers: [server(up)] } } });
    await using untrusted = clientAgent('127.0.0.2');
    const r = await fetchText(`${p.url}/`, {
      dispatcher: untrusted,
      headers: {
        host: 'shop.test',
        'x-real-ip': '6.6.6.6',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.test',
        'x-forwarded-port': '1',
      },
    });
    const h = pairs(JSON.parse(r.body));
    expect(get(h, 'host')).toEqual(['shop.test']);
    expect(get(h, 'x-real-ip')).toEqual(['127.0.0.2']);
    expect(get(h, 'x-forwarded-for')).toEqual(['127.0.0.2']);
    expect(get(h, 'x-forwarded-proto')).toEqual(['http']);
    expect(get(h, 'x-forwarded-host')).toEqual(['shop.test']);
    expect(get(h, 'x-forwarded-port')).toEqual([String(p.proxy.addresses()[0]!.port)]);
  });

  it('believes a trusted proxy: X-Real-IP is the client it names, X-Forwarded-For gets the peer appended', async () => {
    await using up = await echo();
    await using p = await startTestProxy({ trusted_proxies: ['127.0.0.0/8'], pools: { app: { servers: [server(up)] } } });
    const r = await fetchText(`${p.url}/`, {
      headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.5', 'x-real-ip': '1.1.1.1', 'x-forwarded-proto': 'https' },
    });
    const h = pairs(JSON.parse(r.body));
    expect(get(h, 'x-real-ip')).toEqual(['203.0.113.5']);
    expect(get(h, 'x-forwarded-for')).toEqual(['6.6.6.6, 203.0.113.5, 127.0.0.1']);
    expect(get(h, 'x-forwarded-proto')).toEqual(['https']);
  });

  it('Forwarded (RFC 7239): dropped from an untrusted peer; from a trusted one kept, with this hop appended', async () => {
    await using up = await echo();
    await using p = await startTestProxy({ trusted_proxies: ['127.0.0.1'], pools: { app: { servers: [server(up)] } } });
    await using untrusted = clientAgent('127.0.0.2');
    const spoof = ['Forwarded', 'for=6.6.6.6;host=evil.test;proto=https', 'forwarded', 'for=7.7.7.7', 'host', 'shop.test'];
    const fromUntrusted = pairs(JSON.parse((await fetchText(`${p.url}/`, { dispatcher: untrusted, headers: spoof })).body));
    expect(get(fromUntrusted, 'forwarded')).toEqual([]);
    expect(get(fromUntrusted, 'x-forwarded-host')).toEqual(['shop.test']);
    const fromTrusted = pairs(JSON.parse((await fetchText(`${p.url}/`, { headers: spoof })).body));
    expect(get(fromTrusted, 'forwarded')).toEqual(['for=6.6.6.6;host=evil.test;proto=https, for=7.7.7.7, for=127.0.0.1;proto=http']);
  });

  it('drops the managed names spelled with _ (X_Forwarded_For reads as X-Forwarded-For in CGI-style apps)', async () => {
    await using up = await echo();
    await using p = await startTestProxy({ trusted_proxies: ['127.0.0.1'], pools: { app: { servers: [server(up)] } } });
    await using untrusted = clientAgent('127.0.0.2');
    const spoof = { x_forwarded_for: '6.6.6.6', 'x-real_ip': '6.6.6.6', x_forwarded_host: 'evil.test', x_custom: 'kept' };
    for (const dispatcher of [untrusted, undefined]) {
      const h = pairs(JSON.parse((await fetchText(`${p.url}/`, { dispatcher, headers: spoof })).body));
      const names = h.map(([k]) => k.toLowerCase());
      for (const twin of ['x_forwarded_for', 'x-real_ip', 'x_forwarded_host']) expect(names).not.toContain(twin);
      expect(get(h, 'x_custom')).toEqual(['kept']);
    }
  });

  it('Forwarded: a header rule set or remove wins over the proxy, as for X-Forwarded-*', async () => {
    await using up = await echo();
    await using p = await startTestProxy({
      trusted_proxies: ['127.0.0.1'],
      pools: { app: { servers: [server(up)], headers: { remove: ['Forwarded'] } } },
    });
    const h = pairs(JSON.parse((await fetchText(`${p.url}/`, { headers: { forwarded: 'for=6.6.6.6' } })).body));
    expect(get(h, 'forwarded')).toEqual([]);
  });

  it('removes hop-by-hop request headers and those Connection names; keeps case, order and repeats', async () => {
    await using up = await echo();
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const port = p.proxy.addresses()[0]!.port;
    const reply = await rawExchange(
      port,
      'GET / HTTP/1.1\r\nHost: h.test\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: drop me\r\nKeep-Alive: timeout=5\r\n' +
        'Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: websocket\r\nX-MiXeD-Case: one\r\nX-MiXeD-Case: two\r\n\r\n',
    );
    const r = { body: reply.slice(reply.indexOf('\r\n\r\n') + 4) };
    const h = pairs(JSON.parse(r.body));
    const names = h.map(([k]) => k.toLowerCase());
    // undici adds its own `connection: keep-alive` for the upstream connection; the client's `close` must not pass.
    expect(get(h, 'connection')).toEqual(['keep-alive']);
    for (const hop of ['x-secret-hop', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'trailer', 'expect'])
      expect(names).not.toContain(hop);
    expect(h.filter(([k]) => k === 'X-MiXeD-Case').map(([, v]) => v)).toEqual(['one', 'two']);
  });

  it('applies pool then route header operations', async () => {
    await using up = await echo();
    await using p = await startTestProxy({
      routes: [{ path: '/', pool: 'app', headers: { set: { 'X-Env': 'route', 'X-Both': 'route' }, remove: ['X-Drop'] } }],
      pools: {
        app: {
          servers: [server(up)],
          headers: { set: { 'X-Env': 'pool', 'X-Pool': 'yes' }, add: { 'X-Added': 'a', 'X-Both': 'pool' }, remove: ['X-Real-IP'] },
        },
      },
    });
    const r = await fetchText(`${p.url}/`, { headers: { 'x-drop': '1', 'x-env': 'client', 'x-added': 'client' } });
    const h = pairs(JSON.parse(r.body));
    expect(get(h, 'x-env')).toEqual(['route']);
    expect(get(h, 'x-pool')).toEqual(['yes']);
    expect(get(h, 'x-added')).toEqual(['client', 'a']);
    // A route's set replaces every field of that name, the pool's added one too.
    expect(get(h, 'x-both')).toEqual(['route']);
    expect(get(h, 'x-drop')).toEqual([]);
    expect(get(h, 'x-real-ip')).toEqual([]);
  });

  it('response rules: set replaces the upstream field, add appends, remove drops; pool then route; X-Request-Id removable', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, ['Server', 'gunicorn', 'X-Powered-By', 'PHP', 'Set-Cookie', 'a=1', 'X-Env', 'up', 'Content-Length', '2']);
      res.end('ok');
    });
    await using p = await startTestProxy({
      routes: [
        { path: '/', pool: 'app' },
        {
          path: '/quiet',
          pool: 'app',
          response_headers: { remove: ['Strict-Transport-Security', 'X-Request-Id'], set: { 'X-Env': 'route' } },
        },
      ],
      pools: {
        app: {
          servers: [server(up)],
          response_headers: {
            set: { Server: 'tiergate', 'Strict-Transport-Security': 'max-age=63072000' },
            add: { 'Set-Cookie': 'b=2', 'X-Env': 'pool' },
            remove: ['X-Powered-By'],
          },
        },
      },
    });
    const h = pairs(await responseRaw(`${p.url}/`));
    expect(get(h, 'server')).toEqual(['tiergate']);
    expect(get(h, 'strict-transport-security')).toEqual(['max-age=63072000']);
    expect(get(h, 'x-powered-by')).toEqual([]);
    expect(get(h, 'set-cookie')).toEqual(['a=1', 'b=2']);
    expect(get(h, 'x-env')).toEqual(['up', 'pool']);
    expect(get(h, 'x-request-id')).toHaveLength(1);
    expect(get(h, 'content-length')).toEqual(['2']);
    const q = pairs(await responseRaw(`${p.url}/quiet`));
    expect(get(q, 'strict-transport-security')).toEqual([]);
    expect(get(q, 'x-request-id')).toEqual([]);
    expect(get(q, 'x-env')).toEqual(['route']);
    expect(get(q, 'server')).toEqual(['tiergate']);
  });

  it('response rules reach an HTTP/2 client and a 101 answer alike', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.end('ok');
    });
    up.server.on('upgrade', (_req, socket) =>
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nServer: up\r\n\r\n'),
    );
    const rules = { set: { Server: 'tiergate' }, add: { 'X-Frame-Options': 'DENY' } };
    await using p = await startTestProxy({
      listeners: [
        { address: '127.0.0.1', port: 0 },
        { address: '127.0.0.1', port: 0, http2: true },
      ],
      pools: { app: { servers: [server(up)], response_headers: rules } },
    });
    await using c = h2client(`http://127.0.0.1:${p.proxy.addresses()[1]!.port}`);
    const res = await h2request(c, { ':path': '/' });
    expect(res.headers.server).toBe('tiergate');
    expect(res.headers['x-frame-options']).toBe('DENY');
    const raw = await rawExchange(
      p.proxy.addresses()[0]!.port,
      'GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 101 /);
    expect(raw).toMatch(/\r\nServer: tiergate\r\n/);
    expect(raw).not.toMatch(/Server: up/);
    expect(raw).toMatch(/\r\nX-Frame-Options: DENY\r\n/);
  });

  it('response: removes hop-by-hop headers, keeps repeated Set-Cookie and header case', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, [
        'Set-Cookie',
        'a=1; Path=/',
        'Set-Cookie',
        'b=2; Path=/',
        'X-CamelCase-Header',
        'v',
        'Connection',
        'X-Upstream-Private',
        'X-Upstream-Private',
        'secret',
        'Keep-Alive',
        'timeout=1',
        'Upgrade',
        'h2c',
        'Content-Length',
        '2',
      ]);
      res.end('ok');
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const raw = await new Promise<string[]>((resolve, reject) => {
      httpRequest(`${p.url}/`, (res) => {
        res.resume();
        res.on('end', () => resolve(res.rawHeaders));
      })
        .on('error', reject)
        .end();
    });
    const h = pairs(raw);
    expect(get(h, 'set-cookie')).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(h.some(([k]) => k === 'X-CamelCase-Header')).toBe(true);
    expect(get(h, 'x-upstream-private')).toEqual([]);
    expect(get(h, 'keep-alive').length).toBeLessThanOrEqual(1);
    expect(get(h, 'upgrade')).toEqual([]);
    expect(get(h, 'content-length')).toEqual(['2']);
  });
});

describe('Host (RFC 9112 §3.2)', () => {
  const request = (host: string) => `GET /x HTTP/1.1\r\n${host}Connection: close\r\n\r\n`;
  it.each([
    ['two Host lines', 'Host: a.test\r\nHost: b.test\r\n', 400],
    ['two equal Host lines', 'Host: a.test\r\nhost: a.test\r\n', 400],
    ['an empty Host', 'Host:\r\n', 400],
    ['a port only', 'Host: :80\r\n', 400],
    ['a slash', 'Host: a.test/x\r\n', 400],
    ['a space inside', 'Host: a .test\r\n', 400],
    ['two dots in a row', 'Host: a..test\r\n', 400],
    ['a name and port', 'Host: A.Test:8080\r\n', 200],
    ['a trailing dot', 'Host: a.test.\r\n', 200],
    ['an IPv6 literal with port', 'Host: [::1]:80\r\n', 200],
  ])('%s (%j) → %d', async (_name, host, status) => {
    await using up = await echo();
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const reply = await rawExchange(p.proxy.addresses()[0]!.port, request(host));
    expect(Number(reply.slice(9, 12))).toBe(status);
    expect(up.seen).toHaveLength(status === 200 ? 1 : 0);
    if (status === 400) expect(reply).toContain('x-tiergate-error: TG_PROXY_BAD_REQUEST');
  });

  it('HTTP/1.0 with Transfer-Encoding → 400, nothing forwarded (RFC 9112 §6.1: faulty framing)', async () => {
    await using up = await echo();
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const smuggle = 'POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n';
    const reply = await rawExchange(p.proxy.addresses()[0]!.port, smuggle);
    expect(reply.match(/^HTTP\/1\.1 \d+/gm)).toEqual(['HTTP/1.1 400']);
    expect(up.seen).toEqual([]);
  });

  it('HTTP/1.0 without Host is still served', async () => {
    await using up = await echo();
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const reply = await rawExchange(p.proxy.addresses()[0]!.port, 'GET /x HTTP/1.0\r\n\r\n');
    expect(Number(reply.slice(9, 12))).toBe(200);
  });
});

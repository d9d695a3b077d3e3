import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { validateConfig } from '@tiergate/config';
import { startTelemetry } from '@tiergate/telemetry';
import { startOtlpReceiver } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyMetrics, type RequestEvent } from '../src/index.ts';
import { certFiles, h2client, h2request } from './h2-helpers.ts';
import { collect, named, proxySection, server, startTestProxy, startUpstream } from './helpers.ts';

let tls: Awaited<ReturnType<typeof certFiles>>;
beforeAll(async () => {
  tls = await certFiles();
});
afterAll(async () => {
  await tls[Symbol.asyncDispose]();
});

/** A proxy with one TLS listener (h2 by default) in front of `upstream`. */
async function tlsProxy(upstream: { address: string }, extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}) {
  const p = await startTestProxy({
    listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: tls.cert, key: tls.key }, ...listener }],
    pools: { app: { servers: [server(upstream as never)] } },
    ...extra,
  });
  const port = p.proxy.addresses()[0]!.port;
  return Object.assign(p, { port, origin: `https://localhost:${port}` });
}

function alpn(port: number, protocols: string[]): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', ALPNProtocols: protocols, rejectUnauthorized: false, servername: 'localhost' }, () => {
      resolve(s.alpnProtocol ?? false);
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('HTTP/2 to clients', () => {
  it('a TLS listener negotiates h2 and http/1.1 by ALPN; http2: false offers only http/1.1', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up);
    expect(await alpn(p.port, ['h2', 'http/1.1'])).toBe('h2');
    expect(await alpn(p.port, ['http/1.1'])).toBe('http/1.1');
    await using p1 = await tlsProxy(up, {}, { http2: false });
    expect(await alpn(p1.port, ['h2', 'http/1.1'])).toBe('http/1.1');
  });

  it('proxies an h2 request as HTTP/1.1 with :authority as Host and the forwarding headers', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const res = await h2request(c, { ':path': '/x?q=1', ':authority': 'app.example', 'x-forwarded-for': '6.6.6.6', cookie: 'a=1' });
    expect(res.status).toBe(200);
    expect(res.body).toBe('a');
    expect(res.headers['x-request-id']).toMatch(/./);
    const seen = up.seen[0]!;
    expect(seen.url).toBe('/x?q=1');
    expect(seen.headers.host).toBe('app.example');
    expect(seen.headers['x-forwarded-proto']).toBe('https');
    expect(seen.headers['x-forwarded-host']).toBe('app.example');
    expect(seen.headers['x-forwarded-port']).toBe(String(p.port));
    expect(seen.headers['x-real-ip']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.rawHeaders.filter((h) => h.startsWith(':'))).toEqual([]);
  });

  it('joins the split cookie fields of an h2 request into one Cookie for the HTTP/1.1 upstream', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    // node's client sends an array as separate fields, as browsers split cookies for HPACK (RFC 9113 §8.2.3).
    await h2request(c, { ':path': '/', cookie: ['a=1', 'b=2'] });
    const raw = up.seen[0]!.rawHeaders;
    const cookies = raw.filter((_, i) => i % 2 === 0 && raw[i]!.toLowerCase() === 'cookie');
    expect(cookies).toHaveLength(1);
    expect(up.seen[0]!.headers.cookie).toBe('a=1; b=2');
  });

  it('refuses with 400 an h2 request whose Host names another authority than :authority; an agreeing one passes', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const bad = await h2request(c, { ':path': '/', ':authority': 'a.example', host: 'b.example' });
    expect(bad.status).toBe(400);
    expect(bad.headers['x-tiergate-error']).toBe('TG_PROXY_BAD_REQUEST');
    const good = await h2request(c, { ':path': '/', ':authority': 'a.example', host: 'A.example' });
    expect(good.status).toBe(200);
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]!.rawHeaders.filter((h) => h.toLowerCase() === 'host')).toHaveLength(1);
  });

  it('routes h2 requests by :authority', async () => {
    await using a = await startUpstream(named('a'));
    await using b = await startUpstream(named('b'));
    await using p = await startTestProxy({
      listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: tls.cert, key: tls.key } }],
      pools: { a: { servers: [server(a)] }, b: { servers: [server(b)] } },
      routes: [{ host: 'b.example', pool: 'b' }, { pool: 'a' }],
    });
    await using c = h2client(`https://localhost:${p.proxy.addresses()[0]!.port}`);
    expect((await h2request(c, { ':path': '/', ':authority': 'b.example' })).body).toBe('b');
    expect((await h2request(c, { ':path': '/', ':authority': 'other.example' })).body).toBe('a');
  });

  it('streams an h2 request body without content-length to the upstream (chunked) and the answer back', async () => {
    await using up = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(`got ${Buffer.concat(chunks).toString()} ${req.headers['transfer-encoding'] ?? ''}`));
    });
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const res = await h2request(c, { ':path': '/', ':method': 'POST' }, 'hello');
    expect(res.status).toBe(200);
    expect(res.body).toBe('got hello chunked');
  });

  it("strips an upstream's connection-specific response headers for an h2 client, keeping repeated Set-Cookie", async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      // Without content-length node answers chunked: Transfer-Encoding comes too.
      res.writeHead(200, [
        ['Connection', 'keep-alive, x-hop'],
        ['Keep-Alive', 'timeout=5'],
        ['Upgrade', 'h2c'],
        ['Proxy-Connection', 'keep-alive'],
        ['X-Hop', '1'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ]);
      res.end('body');
    });
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const res = await h2request(c, { ':path': '/' });
    expect(res.status).toBe(200);
    expect(res.body).toBe('body');
    for (const h of ['connection', 'keep-alive', 'upgrade', 'proxy-connection', 'transfer-encoding', 'x-hop'])
      expect(res.headers[h]).toBeUndefined();
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });

  it('answers proxy errors on an h2 stream without Connection: close, and the session serves the next request', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up, { limits: { max_body_size: '4' } });
    await using c = h2client(p.origin);
    // An error that closes an HTTP/1.1 connection (its body is unread): on h2 only the stream ends.
    const tooLarge = await h2request(c, { ':path': '/', ':method': 'POST', 'content-length': '10' }, '0123456789');
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers.connection).toBeUndefined();
    expect((await h2request(c, { ':path': '/' })).status).toBe(200);
  });

  it('serves HTTPS/1.1 on the same listener as before', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = httpsRequest(
        { port: p.port, host: '127.0.0.1', path: '/', rejectUnauthorized: false, headers: { host: 'h1.example' } },
        (m) => {
          let body = '';
          m.on('data', (c) => {
            body += c;
          });
          m.on('end', () => resolve({ status: m.statusCode!, body }));
        },
      );
      r.on('error', reject);
      r.end();
    });
    expect(res).toEqual({ status: 200, body: 'a' });
    expect(up.seen[0]!.headers['x-forwarded-proto']).toBe('https');
    expect(up.seen[0]!.httpVersion).toBe('1.1');
  });

  it('serves cleartext h2c with prior knowledge on a listener with http2: true', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await startTestProxy({
      listeners: [{ address: '127.0.0.1', port: 0, http2: true }],
      pools: { app: { servers: [server(up)] } },
    });
    await using c = h2client(`http://127.0.0.1:${p.proxy.addresses()[0]!.port}`);
    const res = await h2request(c, { ':path': '/', ':authority': 'internal' });
    expect(res.status).toBe(200);
    expect(up.seen[0]!.headers['x-forwarded-proto']).toBe('http');
    expect(up.seen[0]!.headers.host).toBe('internal');
  });

  it('logs h2 requests with httpVersion 2.0', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up);
    using events = collect<RequestEvent>('tiergate:proxy:request');
    await using c = h2client(p.origin);
    await h2request(c, { ':path': '/logged', ':authority': 'log.example' });
    await new Promise((r) => setTimeout(r, 20));
    expect(events.map((e) => [e.httpVersion, e.host, e.path, e.status])).toEqual([['2.0', 'log.example', '/logged', 200]]);
  });

  it('on close(), sends GOAWAY and lets the h2 stream in flight finish', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    await using up = await startUpstream((req, res) => {
      req.resume();
      void held.then(() => res.end('late'));
    });
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const goaway = new Promise<number>((r) => c.once('goaway', (code: number) => r(code)));
    const inFlight = h2request(c, { ':path': '/' });
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (up.seen.length > 0) {
          clearInterval(t);
          r();
        }
      }, 5);
    });
    const closing = p.proxy.close();
    expect(await goaway).toBe(0);
    release();
    expect(await inFlight).toMatchObject({ status: 200, body: 'late' });
    await closing;
  });

  it('spans of an h2 request say network.protocol.version 2', async () => {
    await using receiver = await startOtlpReceiver();
    const cfg = validateConfig({ version: 1, telemetry: { tracing: { enabled: true, endpoint: receiver.url } } });
    await using telemetry = await startTelemetry(cfg.telemetry, { tier: 'proxy', version: 'test', exportTimeoutMs: 5_000 });
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    expect((await h2request(c, { ':path': '/t', ':authority': 'trace.example' })).status).toBe(200);
    await telemetry.shutdown();
    const srv = receiver.spans().find((sp) => sp.kind === 'SERVER')!;
    expect(srv.attributes).toMatchObject({ 'network.protocol.version': '2', 'url.scheme': 'https', 'server.address': 'trace.example' });
  });

  it('metrics count h2 requests and connections like HTTP/1.1 ones', async () => {
    await using up = await startUpstream(named('a'));
    const pools = { app: { servers: [server(up)] } };
    await using p = await tlsProxy(up);
    using m = new ProxyMetrics(p.proxy, proxySection({ pools }), { worker: '1' });
    await using c = h2client(p.origin);
    for (let i = 0; i < 3; i++) await h2request(c, { ':path': '/' });
    const text = await m.registry.metrics();
    expect(text).toMatch(/tiergate_proxy_requests_total\{[^}]*code="2xx"[^}]*\} 3/);
    expect(text).toMatch(/tiergate_proxy_client_connections_accepted_total(\{[^}]*\})? 1\n/);
  });

  it('sticky cookies pin an h2 client to its server', async () => {
    await using a = await startUpstream(named('a'));
    await using b = await startUpstream(named('b'));
    await using p = await startTestProxy({
      listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: tls.cert, key: tls.key } }],
      pools: { app: { algorithm: 'round_robin', servers: [server(a), server(b)], sticky: { cookie: 'tg_srv', secret: 'x'.repeat(16) } } },
    });
    await using c = h2client(`https://localhost:${p.proxy.addresses()[0]!.port}`);
    const first = await h2request(c, { ':path': '/' });
    const cookie = String(first.headers['set-cookie']).split(';')[0]!;
    const bodies = new Set<string>();
    for (let i = 0; i < 4; i++) bodies.add((await h2request(c, { ':path': '/', cookie: ['s=1', cookie] })).body);
    expect(bodies).toEqual(new Set([first.body]));
  });

  it('a reload applies new h2 limits to sessions opened after it', async () => {
    await using up = await startUpstream(named('a'));
    const listeners = [{ address: '127.0.0.1', port: 0, tls: { cert: tls.cert, key: tls.key } }];
    const pools = { app: { servers: [server(up)] } };
    await using p = await startTestProxy({ listeners, pools });
    const origin = `https://localhost:${p.proxy.addresses()[0]!.port}`;
    const remoteStreams = async () => {
      await using c = h2client(origin);
      await h2request(c, { ':path': '/' });
      return c.remoteSettings.maxConcurrentStreams;
    };
    expect(await remoteStreams()).toBe(128);
    await p.proxy.reload(proxySection({ listeners, pools, limits: { http2_max_concurrent_streams: 7 } }));
    expect(await remoteStreams()).toBe(7);
  });

  it('failHealthCheck: monitor_uri answers 503 over h2 and the session gets GOAWAY, its stream answered', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up, { monitor_uri: '/healthz' });
    await using c = h2client(p.origin);
    expect((await h2request(c, { ':path': '/healthz' })).status).toBe(200);
    p.proxy.failHealthCheck(true);
    const goaway = new Promise<number>((r) => c.once('goaway', (code: number) => r(code)));
    const res = await h2request(c, { ':path': '/' });
    expect(res.status).toBe(200);
    expect(res.headers.connection).toBeUndefined();
    expect(await goaway).toBe(0);
    await using c2 = h2client(p.origin);
    expect((await h2request(c2, { ':path': '/healthz' })).status).toBe(503);
  });
});

import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Http1AnyRequest, type Http1Response, Http1Server, type Http1ServerOptions } from '../src/http1-server.ts';

// http1-server.ts on its own, over real sockets: what node:http did for the proxy that the proxy's own tests do
// not all reach (they run through it too: every plain-HTTP listener is one of these).

type Handler = (req: Http1AnyRequest, res: Http1Response) => void;
let server: Http1Server | undefined;

async function start(handler: Handler, options: Http1ServerOptions = {}): Promise<number> {
  server = new Http1Server(options, handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}
afterEach(() => {
  server?.closeAllConnections();
  server?.close();
  server = undefined;
});

/** A raw client: what it received so far, and whether the server closed. */
async function client(port: number): Promise<{ s: Socket; text: () => string; closed: Promise<void> }> {
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  let out = '';
  s.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  s.on('error', () => {});
  return { s, text: () => out.replace(/^Date: .*\r\n/gm, ''), closed: once(s, 'close').then(() => {}) };
}

const until = async (f: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return f();
};

describe('http1-server.ts', () => {
  it('keeps the open connections, and only those: 12 opened, 4 closed by the client, then closeIdleConnections and closeAllConnections', async () => {
    const port = await start((_req, res) => res.end('ok'));
    const clients = await Promise.all(Array.from({ length: 12 }, () => client(port)));
    expect(await until(() => server!.http1Connections.size === 12)).toBe(true);
    for (const c of clients.slice(0, 4)) c.s.end();
    await Promise.all(clients.slice(0, 4).map((c) => c.closed));
    expect(await until(() => server!.http1Connections.size === 8)).toBe(true);
    // Two with a request in progress (headers sent, never ended): closeIdleConnections leaves them.
    for (const c of clients.slice(4, 6)) c.s.write('GET / HTTP/1.1\r\nHost: a\r\n');
    await new Promise((r) => setTimeout(r, 50));
    server!.closeIdleConnections();
    expect(await until(() => server!.http1Connections.size === 2)).toBe(true);
    server!.closeAllConnections();
    expect(await until(() => server!.http1Connections.size === 0)).toBe(true);
    await Promise.all(clients.map((c) => c.closed));
  });

  it('answers pipelined requests in order: a later answer waits (socket null) until the earlier one is sent', async () => {
    const pending: Http1Response[] = [];
    const port = await start((req, res) => {
      if (req.url === '/slow') {
        expect(res.socket).not.toBeNull();
        setTimeout(() => res.end('slow'), 50);
      } else {
        pending.push(res);
        res.writeHead(200, ['content-length', '4']);
        res.end('fast');
      }
    });
    const c = await client(port);
    c.s.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(await until(() => pending.length === 1)).toBe(true);
    expect(pending[0]!.socket).toBeNull();
    expect(await until(() => (c.text().match(/HTTP\/1\.1/g) ?? []).length === 2)).toBe(true);
    const t = c.text();
    expect(t.indexOf('slow')).toBeLessThan(t.indexOf('fast'));
    // The first answer had no length: chunked to HTTP/1.1, kept alive.
    expect(t).toMatch(
      /^HTTP\/1\.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n4\r\nslow\r\n0\r\n\r\nHTTP\/1\.1 200 OK\r\n/,
    );
    c.s.destroy();
  });

  it('HEAD, 204 and 304 go without a body; trailers follow a chunked body; 103 early hints come first', async () => {
    const port = await start((req, res) => {
      if (req.url === '/204') res.writeHead(204, ['x', '1']).end();
      else if (req.url === '/304') res.writeHead(304, ['content-length', '9']).end();
      else if (req.url === '/trailers') {
        res.writeEarlyHints({ link: '</a.css>; rel=preload' });
        res.writeHead(200, ['trailer', 'grpc-status']);
        res.write('ab');
        res.addTrailers([['grpc-status', '0']]);
        res.end();
      } else res.writeHead(200, ['content-length', '5']).end('hello');
    });
    const c = await client(port);
    c.s.write(
      'HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nGET /304 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /trailers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    await c.closed;
    const answers = c.text().split(/(?=HTTP\/1\.1 )/);
    expect(answers.map((a) => a.slice(0, 12))).toEqual(['HTTP/1.1 200', 'HTTP/1.1 204', 'HTTP/1.1 304', 'HTTP/1.1 103', 'HTTP/1.1 200']);
    expect(answers[0]).toMatch(/content-length: 5\r\n(?:.*\r\n)*\r\n$/);
    expect(answers[1]).toMatch(/\r\n\r\n$/);
    expect(answers[2]).toMatch(/\r\n\r\n$/);
    expect(answers[3]).toBe('HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n');
    expect(answers[4]).toMatch(/Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nab\r\n0\r\ngrpc-status: 0\r\n\r\n$/);
  });

  it('HTTP/1.0: kept alive with a length when asked, closed after an answer without one', async () => {
    const port = await start((req, res) => {
      if (req.url === '/len') res.writeHead(200, ['content-length', '2']).end('ok');
      else res.end('unframed');
    });
    const c = await client(port);
    c.s.write('GET /len HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /none HTTP/1.0\r\n\r\n');
    await c.closed;
    expect(c.text()).toMatch(
      /^HTTP\/1\.1 200 OK\r\ncontent-length: 2\r\nConnection: keep-alive\r\n.*\r\n\r\nokHTTP\/1\.1 200 OK\r\nConnection: close\r\n\r\nunframed$/s,
    );
  });

  it('Expect: 100-continue goes to checkContinue; another expectation gets 417', async () => {
    let continued = 0;
    let requests = 0;
    const port = await start(() => requests++);
    server!.on('checkContinue', (req: Http1AnyRequest, res: Http1Response) => {
      continued++;
      res.writeContinue();
      (req as import('node:stream').Readable).resume().on('end', () => res.writeHead(200, ['content-length', '0']).end());
    });
    const c = await client(port);
    c.s.write('POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n');
    expect(await until(() => c.text().startsWith('HTTP/1.1 100 Continue\r\n\r\n'))).toBe(true);
    c.s.write('ok');
    expect(await until(() => /HTTP\/1\.1 200/.test(c.text()))).toBe(true);
    c.s.write('GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n');
    await c.closed;
    expect(c.text()).toMatch(/HTTP\/1\.1 417 Expectation Failed\r\n/);
    expect([continued, requests]).toEqual([1, 0]);
  });

  it('a request body is a Readable with backpressure: the socket pauses while it is full and every byte arrives in order', async () => {
    const body = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    let received: Buffer | undefined;
    let pausedSeen = false;
    const port = await start((req, res) => {
      const r = req as import('node:stream').Readable;
      // Read nothing for a while: the parser must stop reading the socket rather than buffer 4 MiB.
      setTimeout(async () => {
        pausedSeen = req.socket.isPaused();
        const parts: Buffer[] = [];
        for await (const p of r) parts.push(p as Buffer);
        received = Buffer.concat(parts);
        res.writeHead(200, ['content-length', '0']).end();
      }, 200);
    });
    const c = await client(port);
    c.s.write(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`);
    c.s.write(body);
    expect(await until(() => /HTTP\/1\.1 200/.test(c.text()), 10_000)).toBe(true);
    expect(pausedSeen).toBe(true);
    expect(received!.equals(body)).toBe(true);
    c.s.destroy();
  });

  it('keep-alive timeout closes an idle connection; the headers timeout reports ERR_HTTP_REQUEST_TIMEOUT', async () => {
    const errors: string[] = [];
    const port = await start((_req, res) => res.writeHead(200, ['content-length', '0']).end(), {
      keepAliveTimeout: 200,
      headersTimeout: 200,
      connectionsCheckingInterval: 50,
    });
    server!.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      errors.push(err.code ?? '');
      socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
    });
    const idle = await client(port);
    idle.s.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const t0 = Date.now();
    await idle.closed;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(idle.text()).toMatch(/^HTTP\/1\.1 200/);
    const slow = await client(port);
    slow.s.write('GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ');
    await slow.closed;
    expect(slow.text()).toMatch(/^HTTP\/1\.1 408/);
    expect(errors).toEqual(['ERR_HTTP_REQUEST_TIMEOUT']);
  });

  it('Upgrade: a tunnel with the bytes after the head when shouldUpgradeCallback allows it, a plain request otherwise', async () => {
    let plain = 0;
    const port = await start(
      (_req, res) => {
        plain++;
        res.writeHead(200, ['content-length', '0']).end();
      },
      { shouldUpgradeCallback: (req) => req.headers.upgrade === 'websocket' },
    );
    server!.on('upgrade', (req: Http1AnyRequest, socket: Socket, head: Buffer) => {
      socket.end(`HTTP/1.1 101 Switching Protocols\r\n\r\n${req.url} head=${head.toString()}`);
    });
    const h2c = await client(port);
    h2c.s.end('GET /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    await h2c.closed;
    expect(h2c.text()).toMatch(/^HTTP\/1\.1 200/);
    const ws = await client(port);
    ws.s.write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframe');
    await ws.closed;
    expect(ws.text()).toBe('HTTP/1.1 101 Switching Protocols\r\n\r\n/ws head=frame');
    expect(plain).toBe(1);
  });

  it('stops reading a connection whose client pipelines without reading the answers, and goes on once they drain', async () => {
    let hold: Http1Response | undefined;
    let seen = 0;
    const port = await start((req, res) => {
      seen++;
      if (req.url === '/hold') hold = res;
      else res.writeHead(200, ['content-length', '0']).end();
    });
    const c = await client(port);
    c.s.write('GET /hold HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(await until(() => hold !== undefined)).toBe(true);
    // One request per write, so each arrives in its own read: reading stops after 33 waiting answers.
    for (let i = 0; i < 100; i++) {
      c.s.write(`GET /${i} HTTP/1.1\r\nHost: a\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 1));
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(hold!.socket!.isPaused()).toBe(true);
    expect(seen).toBeLessThan(60);
    hold!.writeHead(200, ['content-length', '0']).end();
    expect(await until(() => seen === 101)).toBe(true);
    expect(await until(() => (c.text().match(/HTTP\/1\.1 200/g) ?? []).length === 101)).toBe(true);
    c.s.destroy();
  });

  it('closeIdleConnections closes the idle connections and leaves the busy ones', async () => {
    let held: Http1Response | undefined;
    const port = await start((req, res) => {
      if (req.url === '/hold') held = res;
      else res.writeHead(200, ['content-length', '0']).end();
    });
    const idle = await client(port);
    idle.s.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const busy = await client(port);
    busy.s.write('GET /hold HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(await until(() => held !== undefined && /HTTP\/1\.1 200/.test(idle.text()))).toBe(true);
    server!.closeIdleConnections();
    await idle.closed;
    expect(busy.s.destroyed).toBe(false);
    held!.writeHead(200, ['content-length', '1', 'connection', 'close']).end('x');
    await busy.closed;
    expect(busy.text()).toMatch(/Connection: close\r\n\r\nx$/);
  });
});

describe('listeners[].http1_server', () => {
  it('lean by default, also for HTTP/1.1 on TLS listeners; node puts a listener back on node:http(s)', async () => {
    const { Agent } = await import('undici');
    const { certFiles } = await import('./h2-helpers.ts');
    const { fetchText, server, startTestProxy, startUpstream } = await import('./helpers.ts');
    await using certs = await certFiles();
    // Every connection the lean server serves passes through accept(), the TLS listeners' too.
    const accept = vi.spyOn(Http1Server.prototype, 'accept');
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.end('ok');
    });
    // ALPN http/1.1 only (undici would offer h2 too): on the h2 listener, its HTTP/1.1 side.
    const dispatcher = new Agent({ allowH2: false, connect: { rejectUnauthorized: false } });
    const tls = { cert: certs.cert, key: certs.key };
    const kinds = { plain: {}, 'tls h2 + http/1.1': { tls }, 'tls http/1.1': { tls, http2: false } };
    try {
      for (const [kind, listener] of Object.entries(kinds)) {
        for (const impl of ['lean', 'node'] as const) {
          await using p = await startTestProxy({
            listeners: [{ address: '127.0.0.1', port: 0, ...listener, ...(impl === 'node' ? { http1_server: 'node' } : {}) }],
            pools: { app: { servers: [server(up)] } },
          });
          const url = `${'tls' in listener ? 'https' : 'http'}://127.0.0.1:${p.proxy.addresses()[0]!.port}/`;
          accept.mockClear();
          const res = await fetchText(url, { dispatcher });
          expect([kind, impl, res.status, res.body]).toEqual([kind, impl, 200, 'ok']);
          expect([kind, impl, accept.mock.calls.length]).toEqual([kind, impl, impl === 'lean' ? 1 : 0]);
          expect(up.seen.at(-1)!.headers['x-forwarded-proto']).toBe('tls' in listener ? 'https' : 'http');
        }
      }
    } finally {
      accept.mockRestore();
      await dispatcher.close();
    }
  });
});

describe('HTTP/1.1 over TLS on the lean server', () => {
  /** Writes `text` over TLS (offering `alpn`, none when empty) and reads until the proxy closes, or `ms`. */
  async function tlsExchange(port: number, text: string, alpn: string[], ms = 3000): Promise<{ text: string; alpn: string | false }> {
    const { connect: tlsConnect } = await import('node:tls');
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const options = { port, host: '127.0.0.1', rejectUnauthorized: false, ...(alpn.length ? { ALPNProtocols: alpn } : {}) };
      const s = tlsConnect(options, () => s.write(text));
      const timer = setTimeout(() => s.destroy(), ms);
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('error', reject);
      s.on('close', () => {
        clearTimeout(timer);
        resolve({ text: Buffer.concat(chunks).toString('latin1'), alpn: s.alpnProtocol ?? false });
      });
    });
  }

  async function tlsListenerProxy(http2: boolean) {
    const { certFiles } = await import('./h2-helpers.ts');
    const { server, startTestProxy, startUpstream } = await import('./helpers.ts');
    const certs = await certFiles();
    const up = await startUpstream((req, res) => {
      req.resume();
      res.end(`seen ${req.url}`);
    });
    const p = await startTestProxy({
      listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: certs.cert, key: certs.key }, http2 }],
      limits: { client_header_timeout: '300ms' },
      pools: { app: { servers: [server(up)] } },
    });
    return {
      port: p.proxy.addresses()[0]!.port,
      up,
      async [Symbol.asyncDispose]() {
        await p[Symbol.asyncDispose]();
        await up[Symbol.asyncDispose]();
        await certs[Symbol.asyncDispose]();
      },
    };
  }

  for (const [kind, http2, alpn] of [
    ['h2 listener, ALPN http/1.1', true, ['http/1.1']],
    ['h2 listener, no ALPN', true, []],
    ['http/1.1 listener', false, ['http/1.1']],
  ] as const) {
    it(`${kind}: pipelined requests answered in order, a smuggling attempt 400, unfinished headers 408`, async () => {
      await using p = await tlsListenerProxy(http2);
      const two = await tlsExchange(p.port, 'GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', [
        ...alpn,
      ]);
      expect(two.alpn).toBe(alpn.length ? 'http/1.1' : false);
      expect(two.text.match(/HTTP\/1\.1 \d+|seen \/\w/g)).toEqual(['HTTP/1.1 200', 'seen /a', 'HTTP/1.1 200', 'seen /b']);
      const seen = p.up.seen.length;
      const smuggle = await tlsExchange(
        p.port,
        'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n',
        [...alpn],
      );
      expect(smuggle.text).toMatch(/^HTTP\/1\.1 400 .*x-tiergate-error: TG_PROXY_BAD_REQUEST\r\n/s);
      expect(smuggle.text.match(/HTTP\/1\.1/g)).toHaveLength(1);
      const slow = await tlsExchange(p.port, 'GET / HTTP/1.1\r\nHost: a\r\n', [...alpn]);
      expect(slow.text).toMatch(/^HTTP\/1\.1 408 .*x-tiergate-error: TG_PROXY_CLIENT_TIMEOUT\r\n/s);
      expect(p.up.seen.length).toBe(seen);
    });
  }
});

import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
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
  it('lean by default; node puts the listener back on node:http (which publishes http.server.request.start)', async () => {
    const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
    const { fetchText, server, startTestProxy, startUpstream } = await import('./helpers.ts');
    let nodeRequests = 0;
    const onStart = () => {
      nodeRequests++;
    };
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.end('ok');
    });
    // The upstream is a node:http server too: count what it publishes, then what the proxy adds.
    subscribe('http.server.request.start', onStart);
    try {
      for (const [impl, extra] of [
        ['lean', 0],
        ['node', 1],
      ] as const) {
        await using p = await startTestProxy({
          listeners: [{ address: '127.0.0.1', port: 0, ...(impl === 'node' ? { http1_server: 'node' } : {}) }],
          pools: { app: { servers: [server(up)] } },
        });
        nodeRequests = 0;
        expect((await fetchText(`${p.url}/`)).body).toBe('ok');
        expect([impl, nodeRequests]).toEqual([impl, 1 + extra]);
      }
    } finally {
      unsubscribe('http.server.request.start', onStart);
    }
  });
});

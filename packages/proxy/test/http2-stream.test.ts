import { once } from 'node:events';
import { IncomingMessage, ServerResponse } from 'node:http';
import { constants, createServer as createH2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { type AddressInfo, createServer as createNetServer, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLinkValue, serveHttp2Stream } from '../src/http2-stream.ts';
import type { RequestEvent } from '../src/index.ts';
import { certFiles, ERROR, FLAG, FRAME, frame, getFields, h2client, h2request, hpack, rawH2, until } from './h2-helpers.ts';
import { collect, named, server, startTestProxy, startUpstream } from './helpers.ts';

/**
 * What http2-stream.ts re-implements of node's compatibility API, each over real h2 (node:http2's client)
 * through a real proxy: bodiless responses, 100-continue, 417 and 405, early hints, trailers, flow control both
 * ways, and what a reset on either side does to the other.
 */

let tls: Awaited<ReturnType<typeof certFiles>>;
beforeAll(async () => {
  tls = await certFiles();
});
afterAll(async () => {
  await tls[Symbol.asyncDispose]();
});

async function tlsProxy(upstream: { address: string }, extra: Record<string, unknown> = {}) {
  const p = await startTestProxy({
    listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: tls.cert, key: tls.key } }],
    pools: { app: { servers: [server(upstream as never)] } },
    ...extra,
  });
  return Object.assign(p, { origin: `https://localhost:${p.proxy.addresses()[0]!.port}` });
}

/** An upstream that writes `text` raw on each connection (a response node:http could not be made to send). */
async function rawUpstream(text: string): Promise<{ address: string } & AsyncDisposable> {
  const sockets = new Set<Socket>();
  const s = createNetServer((c) => {
    sockets.add(c);
    c.on('error', () => {});
    c.once('data', () => c.write(text));
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return {
    address: `127.0.0.1:${(s.address() as AddressInfo).port}`,
    [Symbol.asyncDispose]: async () => {
      for (const c of sockets) c.destroy();
      await new Promise((r) => s.close(r));
    },
  };
}

/** How an h2 stream ended on the client: its response, body, trailers, interim heads and reset code. */
interface Outcome {
  status: number | undefined;
  headers: IncomingHttpHeaders;
  body: Buffer;
  interim: IncomingHttpHeaders[];
  trailers: IncomingHttpHeaders | undefined;
  ended: boolean;
  rstCode: number | undefined;
}

function outcome(stream: ReturnType<ReturnType<typeof h2client>['request']>): Promise<Outcome> {
  const o: Outcome = {
    status: undefined,
    headers: {},
    body: Buffer.alloc(0),
    interim: [],
    trailers: undefined,
    ended: false,
    rstCode: undefined,
  };
  const chunks: Buffer[] = [];
  stream.on('headers', (h) => o.interim.push(h));
  stream.on('response', (h) => {
    o.headers = h;
    o.status = Number(h[':status']);
  });
  stream.on('trailers', (t) => {
    o.trailers = t;
  });
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => {
    o.ended = true;
  });
  stream.on('error', () => {});
  return new Promise((resolve) =>
    stream.on('close', () => {
      o.body = Buffer.concat(chunks);
      o.rstCode = stream.rstCode;
      resolve(o);
    }),
  );
}

describe('h2 streams through the core API (http2-stream.ts)', () => {
  it('HEAD, 204 and 304 reach an h2 client without a body (HEAD keeps its length), and so does an error answer to HEAD', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      if (req.url === '/204') res.writeHead(204).end();
      else if (req.url === '/304') res.writeHead(304, { etag: '"x"' }).end();
      else res.writeHead(200, { 'content-length': '5' }).end(req.method === 'HEAD' ? undefined : 'hello');
    });
    await using p = await tlsProxy(up, { routes: [{ host: 'app.example', pool: 'app' }] });
    await using c = h2client(p.origin);
    const head = await outcome(c.request({ ':method': 'HEAD', ':path': '/', ':authority': 'app.example' }));
    expect([head.status, head.headers['content-length'], head.body.length, head.ended, head.rstCode]).toEqual([200, '5', 0, true, 0]);
    const noContent = await outcome(c.request({ ':path': '/204', ':authority': 'app.example' }));
    expect([noContent.status, noContent.body.length, noContent.ended]).toEqual([204, 0, true]);
    const notModified = await outcome(c.request({ ':path': '/304', ':authority': 'app.example' }));
    expect([notModified.status, notModified.headers.etag, notModified.body.length, notModified.ended]).toEqual([304, '"x"', 0, true]);
    // No route: the proxy's own 404 has a body, which a HEAD answer must not carry (and the stream ends cleanly).
    const refused = await outcome(c.request({ ':method': 'HEAD', ':path': '/', ':authority': 'other.example' }));
    expect([refused.status, refused.headers['x-tiergate-error'], refused.body.length, refused.ended, refused.rstCode]).toEqual([
      404,
      'TG_PROXY_NO_ROUTE',
      0,
      true,
      0,
    ]);
    expect((await h2request(c, { ':path': '/', ':authority': 'app.example' })).body).toBe('hello');
  });

  it('Expect: 100-continue gets 100 before the body is sent, and 413 without 100 when the length is too large', async () => {
    await using up = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (ch: Buffer) => chunks.push(ch));
      req.on('end', () => res.end(`got ${Buffer.concat(chunks).toString()}`));
    });
    await using p = await tlsProxy(up, { limits: { max_body_size: '10' } });
    await using c = h2client(p.origin);
    const stream = c.request({ ':method': 'POST', ':path': '/', expect: '100-continue', 'content-length': '5' }, { endStream: false });
    const result = outcome(stream);
    // The body goes only after the 100 (node's client emits 'continue' for it).
    await once(stream, 'continue');
    stream.end('hello');
    const ok = await result;
    expect([ok.status, ok.body.toString(), ok.interim.map((h) => h[':status'])]).toEqual([200, 'got hello', [100]]);
    const big = c.request({ ':method': 'POST', ':path': '/', expect: '100-continue', 'content-length': '50' }, { endStream: false });
    const refused = await outcome(big);
    expect([refused.status, refused.interim]).toEqual([413, []]);
    expect(up.seen).toHaveLength(1);
  });

  it('answers 417 to an Expect other than 100-continue and 405 to CONNECT (which went unanswered before); nothing goes upstream', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const expectation = await outcome(c.request({ ':path': '/', expect: 'something-else' }));
    expect([expectation.status, expectation.ended]).toEqual([417, true]);
    const tunnel = await outcome(c.request({ ':method': 'CONNECT', ':authority': 'example.com:443' }));
    expect([tunnel.status, tunnel.ended]).toEqual([405, true]);
    expect((await h2request(c, { ':path': '/' })).body).toBe('a');
    expect(up.seen).toHaveLength(1);
  });

  it("passes an upstream's 103 Early Hints before the final response; a malformed Link loses the hint, not the request", async () => {
    const body = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';
    await using good = await rawUpstream(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style\r\n\r\n${body}`);
    await using p = await tlsProxy(good);
    await using c = h2client(p.origin);
    const hinted = await outcome(c.request({ ':path': '/' }));
    expect([hinted.status, hinted.body.toString()]).toEqual([200, 'ok']);
    expect(hinted.interim.map((h) => [h[':status'], h.link])).toEqual([[103, '</a.css>; rel=preload; as=style']]);
    await using bad = await rawUpstream(`HTTP/1.1 103 Early Hints\r\nLink: no-angle-brackets\r\n\r\n${body}`);
    await using p2 = await tlsProxy(bad);
    await using c2 = h2client(p2.origin);
    const unhinted = await outcome(c2.request({ ':path': '/' }));
    expect([unhinted.status, unhinted.body.toString(), unhinted.interim]).toEqual([200, 'ok', []]);
  });

  it('passes trailers only to an h2 client that sent TE: trailers', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('part');
      res.addTrailers({ 'x-checksum': 'abc' });
      res.end();
    });
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const withTe = await outcome(c.request({ ':path': '/', te: 'trailers' }));
    expect([withTe.status, withTe.body.toString(), withTe.trailers?.['x-checksum']]).toEqual([200, 'part', 'abc']);
    const without = await outcome(c.request({ ':path': '/' }));
    expect([without.status, without.body.toString(), without.trailers, without.ended]).toEqual([200, 'part', undefined, true]);
  });

  it('flow control both ways: 24 MiB up to a slow reader and 4 MiB down through 64 KiB windows, whole and in order', async () => {
    // More than loopback's socket buffers hold, so the upstream's backpressure reaches the client's stream.
    const up24 = 24 * 1024 * 1024;
    const down = 4 * 1024 * 1024;
    const pattern = (n: number) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = i % 251;
      return b;
    };
    await using up = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      // Read nothing for a while: the upstream socket fills, undici pauses the body, the h2 stream is paused.
      req.pause();
      setTimeout(() => req.on('data', (ch: Buffer) => chunks.push(ch)).resume(), 500);
      req.on('end', () => {
        const got = Buffer.concat(chunks);
        res.writeHead(200, { 'x-upload-ok': String(got.equals(pattern(up24))) });
        res.end(pattern(down));
      });
    });
    await using p = await tlsProxy(up, { limits: { max_body_size: 0 } });
    await using c = h2client(p.origin);
    const stream = c.request({ ':method': 'POST', ':path': '/' }, { endStream: false });
    const result = outcome(stream);
    stream.end(pattern(up24));
    const o = await result;
    expect([o.status, o.headers['x-upload-ok'], o.body.length, o.ended]).toEqual([200, 'true', down, true]);
    expect(o.body.equals(pattern(down))).toBe(true);
  });

  it('an upstream that dies mid-body resets the h2 stream: the client cannot take the cut body for a whole one', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '100000' });
      res.write('x'.repeat(10), () => setTimeout(() => res.socket?.destroy(), 50));
    });
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const o = await outcome(c.request({ ':path': '/' }));
    expect(o.status).toBe(200);
    expect(o.body.length).toBeLessThan(100000);
    expect(o.ended).toBe(false);
    expect(o.rstCode).not.toBe(constants.NGHTTP2_NO_ERROR);
  });

  it('a client that resets its stream mid-response aborts the upstream request, logged as aborted', async () => {
    using events = collect<RequestEvent>('tiergate:proxy:request');
    let upstreamClosed = false;
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200);
      res.write('first');
      res.on('close', () => {
        upstreamClosed = !res.writableFinished;
      });
    });
    await using p = await tlsProxy(up);
    await using c = h2client(p.origin);
    const stream = c.request({ ':path': '/' });
    stream.on('error', () => {});
    await once(stream, 'data');
    stream.close(constants.NGHTTP2_CANCEL);
    await until(() => upstreamClosed, 5000, 'the upstream request to be aborted');
    await until(() => events.length > 0, 5000, 'the access log event');
    expect(events[0]).toMatchObject({ aborted: true, status: 200 });
  });

  it('a client that resets its stream mid-request-body aborts the upstream request: the cut body never ends upstream', async () => {
    let upstream: { ended: boolean; aborted: boolean; bytes: number } | undefined;
    await using up = await startUpstream((req) => {
      const seen = { ended: false, aborted: false, bytes: 0 };
      upstream = seen;
      req.on('data', (ch: Buffer) => {
        seen.bytes += ch.length;
      });
      req.on('end', () => {
        seen.ended = true;
      });
      req.on('close', () => {
        if (!seen.ended) seen.aborted = true;
      });
    });
    await using p = await tlsProxy(up);
    // Raw frames: node's client ends the stream (an empty DATA with END_STREAM) before its RST_STREAM, which
    // would make the body whole; a client that vanishes mid-body does not.
    using raw = await rawH2(p.proxy.addresses()[0]!.port);
    raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, hpack([...postFields('localhost')])));
    raw.send(frame(FRAME.DATA, 0, 1, Buffer.from('part of a body')));
    await until(() => (upstream?.bytes ?? 0) > 0, 5000, 'the first part of the body upstream');
    raw.send(frame(FRAME.RST_STREAM, 0, 1, u32(ERROR.CANCEL)));
    await until(() => upstream!.aborted || upstream!.ended, 5000, 'the upstream request to end');
    expect(upstream).toMatchObject({ aborted: true, ended: false });
  });
});

function postFields(authority: string): [string, string][] {
  return getFields(authority).map(([n, v]) => [n, n === ':method' ? 'POST' : v]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

describe('the response head node keeps on the stream (releaseSentList)', () => {
  it("is released once sent: the client gets every field, and the stream holds an empty list in node's raw-headers slot", async () => {
    const streams: ServerHttp2Stream[] = [];
    const h2 = createH2Server();
    h2.on('stream', (stream, headers, _flags, raw) => {
      streams.push(stream);
      serveHttp2Stream(stream, headers, raw, (_req, res) => {
        res.writeHead(200, ['content-type', 'text/plain', 'x-kept', 'by-node']);
        res.end('ok');
      });
    });
    h2.listen(0, '127.0.0.1');
    await once(h2, 'listening');
    await using client = h2client(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`);
    const o = await outcome(client.request({ ':path': '/' }));
    expect(o.status).toBe(200);
    expect(o.headers['x-kept']).toBe('by-node');
    expect(o.body.toString()).toBe('ok');
    const stream = streams[0]!;
    // node's key for the list given to `respond` (lib/internal/http2/core.js): if node renames it, this fails and
    // http2-stream.ts's releaseSentList, which then releases nothing, needs the new name.
    const key = Object.getOwnPropertySymbols(stream).find((k) => k.description === 'raw-headers');
    expect(key, "node's raw-headers key on a ServerHttp2Stream").toBeDefined();
    expect((stream as unknown as Record<symbol, unknown>)[key!]).toEqual([]);
    expect(stream.sentHeaders).toEqual({});
    h2.close();
  });
});

describe('isLinkValue', () => {
  it("accepts and refuses the Link values node:http's writeEarlyHints does", () => {
    const values = [
      '</a.css>; rel=preload; as=style',
      '</a.css>',
      '<https://cdn.example/x.js>; rel=preload; as=script; crossorigin',
      '</a>; rel="preload"',
      '</a>; rel="pre load"',
      'no-angle-brackets',
      '</a.css> rel=preload',
      '</a\r\n.css>; rel=preload',
      '</a>; rel=pre"load',
      '',
      '<>',
    ];
    for (const v of values) {
      const res = new ServerResponse(new IncomingMessage(new Socket()));
      let nodeAccepts = true;
      try {
        res.writeEarlyHints({ link: v });
      } catch {
        nodeAccepts = false;
      }
      expect([v, isLinkValue(v)]).toEqual([v, nodeAccepts]);
    }
  });
});

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { fetchText, named, rawExchange, server, startTestProxy, startUpstream } from './helpers.ts';

/**
 * A listening socket that never accepts, with its accept queue filled: further SYNs are dropped by
 * the kernel, so a connect hangs until the proxy's connect timeout. (Node always accepts, hence python.)
 */
async function blackhole(): Promise<{ port: number } & AsyncDisposable> {
  const py = spawn(
    'python3',
    [
      '-c',
      'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const [line] = (await once(py.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  const fillers: Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  return {
    port,
    async [Symbol.asyncDispose]() {
      for (const s of fillers) s.destroy();
      py.kill();
    },
  };
}

describe('upstream failures and timeouts', () => {
  it('connect timeout → 504 TG_PROXY_UPSTREAM_CONNECT_TIMEOUT', async () => {
    await using hole = await blackhole();
    await using p = await startTestProxy({
      pools: { app: { servers: [{ address: `127.0.0.1:${hole.port}` }], timeouts: { connect: '300ms' } } },
    });
    const r = await fetchText(`${p.url}/`);
    expect([r.status, r.body]).toEqual([504, '504 Gateway Timeout (TG_PROXY_UPSTREAM_CONNECT_TIMEOUT)\n']);
  });

  it('connection refused → 502 TG_PROXY_UPSTREAM_CONNECT', async () => {
    const gone = await startUpstream(named('x'));
    await gone[Symbol.asyncDispose]();
    await using p = await startTestProxy({ pools: { app: { servers: [{ address: gone.address }] } } });
    const r = await fetchText(`${p.url}/`);
    expect([r.status, r.headers['x-tiergate-error']]).toEqual([502, 'TG_PROXY_UPSTREAM_CONNECT']);
  });

  it('no response headers in time → 504 TG_PROXY_UPSTREAM_TIMEOUT', async () => {
    await using silent = await startUpstream(() => {});
    await using p = await startTestProxy({ pools: { app: { servers: [server(silent)], timeouts: { response_headers: '300ms' } } } });
    const r = await fetchText(`${p.url}/`);
    expect([r.status, r.body]).toEqual([504, '504 Gateway Timeout (TG_PROXY_UPSTREAM_TIMEOUT)\n']);
  });

  it('idle upstream body → the client connection is cut, never a complete response', async () => {
    await using stall = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('x'.repeat(10));
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(stall)], timeouts: { idle: '300ms' } } } });
    const res = await request(`${p.url}/`);
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
  });

  it('a response-headers timeout is retried on another server', async () => {
    await using silent = await startUpstream(() => {});
    await using good = await startUpstream(named('good'));
    await using p = await startTestProxy({
      pools: {
        app: { algorithm: 'round_robin', servers: [server(silent), server(good)], timeouts: { response_headers: '300ms' } },
      },
    });
    const r = await fetchText(`${p.url}/`);
    expect([r.status, r.body, silent.seen.length]).toEqual([200, 'good', 1]);
  });

  it('the response-headers timeout counts from the last request body chunk sent, not from the start', async () => {
    await using echo = await startUpstream((req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(String(n)));
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(echo)], timeouts: { response_headers: '300ms' } } } });
    // 4 chunks 200 ms apart: the upload takes ~800 ms, longer than response_headers, with no gap as long.
    async function* slowly() {
      for (let i = 0; i < 4; i++) {
        yield Buffer.alloc(1000, 'u');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const res = await request(`${p.url}/`, { method: 'PUT', body: Readable.from(slowly()) });
    expect([res.statusCode, await res.body.text()]).toEqual([200, '4000']);
  });

  it('a client too slow to read is no idle upstream: within send_timeout the response completes', async () => {
    const body = Buffer.alloc(64 * 1024 ** 2, 'b'); // more than the loopback socket buffers hold
    await using big = await startUpstream((_req, res) => res.end(body));
    await using p = await startTestProxy({
      limits: { send_timeout: '3s' },
      pools: { app: { servers: [server(big)], timeouts: { idle: '300ms' } } },
    });
    const res = await request(`${p.url}/`);
    // Not reading for 1 s: the proxy is paused by backpressure far longer than `idle`, not `send_timeout`.
    await new Promise((r) => setTimeout(r, 1000));
    expect((await res.body.arrayBuffer()).byteLength).toBe(body.length);
  });

  it('a client that stops reading for send_timeout is cut, frees the max_conns slot and blames no server', async () => {
    const body = Buffer.alloc(64 * 1024 ** 2, 'b');
    await using big = await startUpstream((req, res) => res.end(req.url === '/small' ? 'small' : body));
    await using p = await startTestProxy({
      limits: { send_timeout: '300ms' },
      pools: { app: { servers: [server(big, { max_conns: 1 })], timeouts: { idle: '300ms' } } },
    });
    const res = await request(`${p.url}/`);
    // Before nginx-like send_timeout, this client held the upstream connection and its only max_conns slot for ever.
    await new Promise((r) => setTimeout(r, 1000));
    const got = await res.body.arrayBuffer().then(
      (b) => b.byteLength,
      () => -1,
    );
    expect(got).toBe(-1);
    expect(p.proxy.status().pools[0]!.servers[0]).toMatchObject({ active: 0, fails: 0, failed: false });
    expect((await fetchText(`${p.url}/small`)).body).toBe('small');
  });

  it('upstream dying mid-body (chunked) → no terminating chunk reaches the client', async () => {
    await using dying = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(dying)] } } });
    const raw = await rawExchange(p.proxy.addresses()[0]!.port, 'GET / HTTP/1.1\r\nHost: t\r\n\r\n');
    expect(raw).toContain('partial');
    expect(raw.toLowerCase()).toContain('transfer-encoding: chunked');
    expect(raw.endsWith('0\r\n\r\n')).toBe(false);
    const res = await request(`${p.url}/`);
    await expect(res.body.text()).rejects.toThrow();
  });

  it('a client that goes away aborts the upstream request', async () => {
    let closed!: () => void;
    const upstreamClosed = new Promise<void>((r) => (closed = r));
    let arrived!: () => void;
    const upstreamGotIt = new Promise<void>((r) => (arrived = r));
    await using slow = await startUpstream((_req, res) => {
      res.on('close', closed);
      arrived();
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(slow)] } } });
    const ac = new AbortController();
    const pending = request(`${p.url}/`, { signal: ac.signal }).catch((e: Error) => e);
    await upstreamGotIt;
    ac.abort();
    await upstreamClosed;
    expect(await pending).toBeInstanceOf(Error);
    expect(p.proxy.status().inFlight).toBe(0);
  });
});

describe('client-side limits', () => {
  it('slow client headers → 408 TG_PROXY_CLIENT_TIMEOUT', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await startTestProxy({ limits: { client_header_timeout: '200ms' }, pools: { app: { servers: [server(up)] } } });
    const raw = await rawExchange(p.proxy.addresses()[0]!.port, 'GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ', 3000);
    expect(raw).toMatch(/^HTTP\/1\.1 408 /);
    expect(raw).toContain('TG_PROXY_CLIENT_TIMEOUT');
    expect(up.seen.length).toBe(0);
  });

  it('headers above max_header_size → 431, malformed request → 400', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await startTestProxy({ limits: { max_header_size: 1024 }, pools: { app: { servers: [server(up)] } } });
    const port = p.proxy.addresses()[0]!.port;
    const big = await rawExchange(port, `GET / HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    expect(big).toContain('TG_PROXY_HEADERS_TOO_LARGE');
    const bad = await rawExchange(port, 'GARBAGE\r\n\r\n');
    expect(bad).toMatch(/^HTTP\/1\.1 400 /);
    expect(bad).not.toMatch(/at .*\.ts:\d+/);
  });

  it('body above max_body_size → 413 by content-length, and while streaming a chunked body', async () => {
    let complete = 0;
    await using up = await startUpstream((req, res) => {
      req.resume();
      req.on('end', () => {
        complete++;
        res.end('ok');
      });
    });
    await using p = await startTestProxy({
      limits: { max_body_size: 1000 },
      routes: [
        { path: '/', pool: 'app' },
        { path: '/big', pool: 'app', max_body_size: '1m' },
      ],
      pools: { app: { servers: [server(up)] } },
    });
    const byLength = await fetchText(`${p.url}/`, { method: 'POST', body: 'x'.repeat(2000) });
    expect([byLength.status, byLength.headers['x-tiergate-error']]).toEqual([413, 'TG_PROXY_BODY_TOO_LARGE']);
    expect((await fetchText(`${p.url}/big`, { method: 'POST', body: 'x'.repeat(2000) })).status).toBe(200);
    expect(complete).toBe(1);
    const port = p.proxy.addresses()[0]!.port;
    const chunk = `${(500).toString(16)}\r\n${'y'.repeat(500)}\r\n`;
    const raw = await rawExchange(port, `POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.repeat(4)}0\r\n\r\n`);
    expect(raw).toMatch(/^HTTP\/1\.1 413 /);
    expect(complete).toBe(1);
  });

  it('Expect: 100-continue gets 100 before the body, and 413 without reading it when too large', async () => {
    await using up = await startUpstream((req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(`len ${n}`));
    });
    await using p = await startTestProxy({ limits: { max_body_size: 100 }, pools: { app: { servers: [server(up)] } } });
    const port = p.proxy.addresses()[0]!.port;
    const s = connect(port, '127.0.0.1');
    s.write('POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    const [first] = (await once(s, 'data')) as [Buffer];
    expect(first.toString()).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
    s.write('hello');
    let rest = first.toString().split('\r\n\r\n').slice(1).join('\r\n\r\n');
    while (!rest.includes('len 5')) rest += ((await once(s, 'data')) as [Buffer])[0].toString();
    expect(rest).toMatch(/HTTP\/1\.1 200 /);
    s.destroy();
    const tooBig = await rawExchange(port, 'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n');
    expect(tooBig).toMatch(/^HTTP\/1\.1 413 /);
  });

  it('HEAD, 204 and 304 pass without a body', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      if (req.url === '/204') res.writeHead(204).end();
      else if (req.url === '/304') res.writeHead(304, { etag: '"x"' }).end();
      else res.writeHead(200, { 'content-length': '5' }).end(req.method === 'HEAD' ? undefined : 'hello');
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const head = await fetchText(`${p.url}/`, { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body]).toEqual([200, '5', '']);
    expect((await fetchText(`${p.url}/204`)).status).toBe(204);
    const nm = await fetchText(`${p.url}/304`);
    expect([nm.status, nm.headers.etag, nm.body]).toEqual([304, '"x"', '']);
    expect((await fetchText(`${p.url}/`)).body).toBe('hello');
  });

  it('response trailers reach a chunked client response', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('data');
      res.addTrailers({ 'x-checksum': 'abc' });
      res.end();
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const raw = await rawExchange(p.proxy.addresses()[0]!.port, 'GET / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n');
    expect(raw).toMatch(/0\r\nx-checksum: abc\r\n\r\n$/i);
  });
});

import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { REQUEST_CHANNEL, type RequestEvent } from '../src/index.ts';
import { collect, rawExchange, startTestProxy } from './helpers.ts';

interface EchoServer extends AsyncDisposable {
  readonly address: string;
  readonly wss: WebSocketServer;
  /** Upgrade requests seen. */
  readonly seen: IncomingMessage[];
}

/** A real WebSocket echo server (ws) on 127.0.0.1:0; `reject` answers the upgrade with that status instead. */
async function startEcho(name: string, reject?: number): Promise<EchoServer> {
  const http = createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ noServer: true });
  const seen: IncomingMessage[] = [];
  http.on('upgrade', (req, socket, head) => {
    seen.push(req);
    if (reject) {
      socket.end(`HTTP/1.1 ${reject} Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, binary) => {
        if (data.toString() === 'close-me') ws.close(4000, 'asked');
        else ws.send(binary ? data : `${name}:${data.toString()}`);
      });
    });
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  return {
    address: `127.0.0.1:${(http.address() as AddressInfo).port}`,
    wss,
    seen,
    async [Symbol.asyncDispose]() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    },
  };
}

function wsUrl(httpUrl: string): string {
  return httpUrl.replace('http:', 'ws:');
}

async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await once(ws, 'open');
  return ws;
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  ws.send(text);
  const [data] = await once(ws, 'message');
  return String(data);
}

/** Waits (bounded: 5 s) for a condition that sockets closing on every side make true asynchronously. */
async function until(ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('WebSocket / Upgrade', () => {
  it('tunnels through the balancer with forwarding headers, and releases the server on close', async () => {
    await using a = await startEcho('a');
    await using b = await startEcho('b');
    await using p = await startTestProxy(
      { pools: { app: { algorithm: 'least_conn', servers: [{ address: a.address }, { address: b.address }] } } },
      () => 0,
    );
    using events = collect<RequestEvent>(REQUEST_CHANNEL);
    const w1 = await openWs(`${wsUrl(p.url)}/chat?room=1`);
    const w2 = await openWs(`${wsUrl(p.url)}/chat?room=2`);
    const replies = [await echo(w1, 'hi'), await echo(w2, 'hi')].sort();
    expect(replies).toEqual(['a:hi', 'b:hi']);
    const active = () => p.proxy.status().pools[0]!.servers.map((s) => s.active);
    expect(active()).toEqual([1, 1]);
    const req = a.seen[0]!;
    expect(req.url).toMatch(/^\/chat\?room=/);
    expect(req.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(req.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(req.headers.upgrade).toBe('websocket');
    // Binary frames pass unchanged.
    w1.send(Buffer.from([0, 1, 2, 255]));
    const [bin] = await once(w1, 'message');
    expect([...(bin as Buffer)]).toEqual([0, 1, 2, 255]);
    w1.close(1000, 'bye');
    w2.close();
    await Promise.all([once(w1, 'close'), once(w2, 'close')]);
    while (events.length < 2) await new Promise((r) => setTimeout(r, 10));
    expect(active()).toEqual([0, 0]);
    expect(events[0]).toMatchObject({ status: 101, upgraded: true, attempts: 1, error: undefined });
    expect(events[0]!.bytesSent).toBeGreaterThan(0);
  });

  it('closes the client when the upstream closes, and the upstream when the client goes away', async () => {
    await using a = await startEcho('a');
    await using p = await startTestProxy({ pools: { app: { servers: [{ address: a.address }] } } });
    const w = await openWs(wsUrl(p.url));
    w.send('close-me');
    const [code, reason] = await once(w, 'close');
    expect([code, String(reason)]).toEqual([4000, 'asked']);
    const w2 = await openWs(wsUrl(p.url));
    while (a.wss.clients.size === 0) await new Promise((r) => setTimeout(r, 10));
    const [server] = [...a.wss.clients];
    const closed = once(server!, 'close');
    w2.terminate(); // no close frame: the TCP connection just goes
    await closed;
    await until(() => p.proxy.status().inFlight === 0);
    expect(p.proxy.status().inFlight).toBe(0);
  });

  it('a tunnel outlives the client request and header timeouts (they are for HTTP requests only)', async () => {
    await using a = await startEcho('a');
    await using p = await startTestProxy({
      limits: { client_request_timeout: '300ms', client_header_timeout: '300ms' },
      pools: { app: { servers: [{ address: a.address }] } },
    });
    const w = await openWs(wsUrl(p.url));
    await new Promise((r) => setTimeout(r, 1200));
    expect(await echo(w, 'still')).toBe('a:still');
    w.close();
    await once(w, 'close');
  });

  it('a refused upgrade (non-101) reaches the client as an HTTP answer; no server → 502', async () => {
    await using no = await startEcho('no', 403);
    await using p = await startTestProxy({ pools: { app: { servers: [{ address: no.address }] } } });
    const w = new WebSocket(wsUrl(p.url));
    w.on('error', () => {});
    const [, res] = (await once(w, 'unexpected-response')) as [unknown, IncomingMessage];
    expect(res.statusCode).toBe(403);
    w.terminate();
    const gone = await startEcho('gone');
    await gone[Symbol.asyncDispose]();
    await using p2 = await startTestProxy({ pools: { app: { servers: [{ address: gone.address }] } } });
    const w2 = new WebSocket(wsUrl(p2.url));
    w2.on('error', () => {});
    const [, res2] = (await once(w2, 'unexpected-response')) as [unknown, IncomingMessage];
    expect([res2.statusCode, res2.headers['x-tiergate-error']]).toEqual([502, 'TG_PROXY_UPSTREAM_CONNECT']);
    w2.terminate();
  });

  it('tunnels only the allowed Upgrade protocols: h2c (or any other) is proxied as a plain request, Upgrade stripped', async () => {
    // An upstream that would switch to any protocol it is asked for (h2c: HTTP/2 past the proxy's rules).
    const plain: IncomingMessage[] = [];
    const switched: IncomingMessage[] = [];
    const http = createServer((req, res) => {
      plain.push(req);
      req.resume();
      res.end('plain');
    });
    http.on('upgrade', (req, socket) => {
      switched.push(req);
      socket.end(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\n\r\n`);
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    await using _http = { [Symbol.asyncDispose]: () => new Promise<void>((r) => http.close(() => r())) };
    const address = `127.0.0.1:${(http.address() as AddressInfo).port}`;
    const ask = (url: string, upgrade: string) => {
      return rawExchange(
        Number(new URL(url).port),
        `GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: ${upgrade}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n`,
      );
    };
    await using p = await startTestProxy({ pools: { app: { servers: [{ address }] } } });
    for (const upgrade of ['h2c', 'websocket, h2c', 'H2C']) {
      const raw = await ask(p.url, upgrade);
      expect(raw).toMatch(/^HTTP\/1\.1 200 /);
      expect(raw.endsWith('plain')).toBe(true);
    }
    expect(switched).toEqual([]);
    expect(plain.map((r) => [r.headers.upgrade, r.headers['http2-settings'], r.headers.connection])).toEqual([
      [undefined, undefined, 'keep-alive'],
      [undefined, undefined, 'keep-alive'],
      [undefined, undefined, 'keep-alive'],
    ]);
    // The list is configurable: with `upgrades: [h2c]` that upgrade is tunneled, and websocket is not.
    await using p2 = await startTestProxy({ upgrades: ['h2c'], pools: { app: { servers: [{ address }] } } });
    expect(await ask(p2.url, 'h2c')).toMatch(/^HTTP\/1\.1 101 /);
    expect(switched.map((r) => r.headers.upgrade)).toEqual(['h2c']);
    expect(await ask(p2.url, 'websocket')).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('leaks no file descriptor over 10,000 open/echo/close cycles', async () => {
    await using a = await startEcho('a');
    await using b = await startEcho('b');
    await using p = await startTestProxy({ pools: { app: { servers: [{ address: a.address }, { address: b.address }] } } });
    const url = wsUrl(p.url);
    const cycle = async (i: number) => {
      const w = await openWs(url);
      expect(await echo(w, String(i))).toMatch(/^[ab]:\d+$/);
      if (i % 2 === 0) w.close();
      else w.terminate();
      await once(w, 'close');
    };
    for (let i = 0; i < 20; i++) await cycle(i); // warm-up: lazily opened fds (epoll, pipes) settle
    await new Promise((r) => setTimeout(r, 100));
    const before = fdCount();
    const total = 10_000;
    const concurrency = 25;
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) await cycle(next++);
      }),
    );
    // Sockets close asynchronously on every side: wait (bounded) for the count to settle.
    await until(() => fdCount() <= before + 2 && p.proxy.status().inFlight === 0);
    expect(fdCount()).toBeLessThanOrEqual(before + 2);
    expect(p.proxy.status().inFlight).toBe(0);
    expect(p.proxy.status().pools[0]!.servers.map((s) => s.active)).toEqual([0, 0]);
  }, 240_000); // a count, not a speed: ~13 s on a quiet 2-core machine, past 60 s when the machine is shared
});

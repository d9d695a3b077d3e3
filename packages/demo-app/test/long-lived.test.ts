import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { validateConfig } from '@tiergate/config';
import { startProxy } from '@tiergate/proxy';
import { MemoryStore } from '@tiergate/session';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createDemoApp, downloadByteAt, type StartDemoAppOptions, startDemoApp } from '../src/index.ts';

function app(options: Partial<StartDemoAppOptions> = {}) {
  return startDemoApp({ instanceId: 'web1', store: new MemoryStore(), demo: true, ...options });
}

/** GETs a download and checks every byte of the pattern; returns the count, the status and the seconds it took. */
async function fetchDownload(url: string): Promise<{ status: number; length: string | undefined; received: number; seconds: number }> {
  const started = performance.now();
  const res = await request(url);
  let received = 0;
  let wrong = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    for (const byte of chunk) if (byte !== downloadByteAt(received++)) wrong++;
  }
  expect(wrong).toBe(0);
  const length = res.headers['content-length'] as string | undefined;
  return { status: res.statusCode, length, received, seconds: (performance.now() - started) / 1000 };
}

async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await once(ws, 'open');
  return ws;
}

async function echo(ws: WebSocket, data: string | Buffer): Promise<{ data: Buffer; isBinary: boolean }> {
  ws.send(data);
  const [reply, isBinary] = (await once(ws, 'message')) as [Buffer, boolean];
  return { data: reply, isBinary };
}

/** The handshake's answer when the server refuses the upgrade: ws reports the status in its error. */
async function refusedUpgrade(url: string): Promise<string> {
  const ws = new WebSocket(url);
  const [err] = (await once(ws, 'error')) as [Error];
  return err.message;
}

/** Waits (bounded: 5 s) for a condition that sockets closing on both sides make true asynchronously. */
async function until(ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

// 192 KiB at 256 KiB/s: about 0.75 s; the test asserts only half of it, a lower bound.
const BYTES = 192 * 1024;
const RATE = 256 * 1024;

describe('GET /download (demo mode): a paced download for drills', () => {
  it('sends exactly `bytes` bytes of the pattern, with Content-Length, no faster than `rate`', async () => {
    await using demo = await app();
    const got = await fetchDownload(`${demo.url}/download?bytes=${BYTES}&rate=${RATE}`);
    expect(got).toMatchObject({ status: 200, length: String(BYTES), received: BYTES });
    expect(got.seconds).toBeGreaterThanOrEqual((BYTES / RATE) * 0.5);
    // A zero-byte download is an empty 200.
    expect(await fetchDownload(`${demo.url}/download?bytes=0&rate=1024`)).toMatchObject({ status: 200, length: '0', received: 0 });
  });

  it('rejects missing, non-integer and out-of-range parameters with 400 and a one-line reason', async () => {
    await using demo = await app();
    const bad = [
      '',
      'bytes=1024',
      'rate=1024',
      'bytes=abc&rate=1024',
      'bytes=1.5&rate=1024',
      'bytes=1e3&rate=1024',
      'bytes=-1&rate=1024',
      'bytes=1024&rate=',
      `bytes=${256 * 1024 * 1024 + 1}&rate=1024`,
      'bytes=1024&rate=1023',
      `bytes=1024&rate=${1024 * 1024 * 1024 + 1}`,
      'bytes=99999999999999999999&rate=1024',
    ];
    for (const query of bad) {
      const res = await request(`${demo.url}/download?${query}`);
      const body = await res.body.text();
      expect({ query, status: res.statusCode }).toEqual({ query, status: 400 });
      expect(body).toMatch(/^'(bytes|rate)' must be an integer from \d+ to \d+\n$/);
    }
    const post = await request(`${demo.url}/download?bytes=1&rate=1024`, { method: 'POST' });
    await post.body.dump();
    expect(post.statusCode).toBe(405);
  });

  it('is 404 outside demo mode, like any unknown path', async () => {
    await using demo = await app({ demo: false });
    const res = await request(`${demo.url}/download?bytes=1024&rate=1024`);
    await res.body.dump();
    expect(res.statusCode).toBe(404);
  });

  it('stops when the client goes away: the response closes, nothing more is written, the server closes', async () => {
    const server = createDemoApp({ instanceId: 'web1', store: new MemoryStore(), demo: true });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const closed: ServerResponse[] = [];
    let writesAfterClose = 0;
    // Runs after the app's listener, so it sees the writes from the second tick on: the ones an abort must stop.
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res.on('close', () => closed.push(res));
      const write = res.write.bind(res) as (chunk: Buffer) => boolean;
      res.write = ((chunk: Buffer) => {
        if (closed.includes(res)) writesAfterClose++;
        return write(chunk);
      }) as typeof res.write;
    });
    // 1 MiB at 16 KiB/s would take a minute.
    const abort = new AbortController();
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/download?bytes=${1024 * 1024}&rate=${16 * 1024}`;
    const res = await request(url, { signal: abort.signal });
    expect(res.statusCode).toBe(200);
    const first = (await res.body[Symbol.asyncIterator]().next()).value as Buffer;
    expect(first.length).toBeGreaterThan(0);
    abort.abort();
    await until(() => closed.length === 1);
    expect(closed.length).toBe(1);
    expect(closed[0]!.writableFinished).toBe(false);
    // Three ticks of the pacing timer: a download that kept going would have written (into nothing) by now.
    await new Promise((r) => setTimeout(r, 300));
    expect(writesAfterClose).toBe(0);
    // Nor does a write wait forever for a 'drain' that a closed response never emits.
    expect(closed[0]!.listenerCount('drain')).toBe(0);
    // No connection left either: close() completes without closeAllConnections().
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  });
});

describe('/ws (demo mode): a WebSocket echo for drills', () => {
  it('echoes text and binary messages unchanged', async () => {
    await using demo = await app();
    const ws = await openWs(`${demo.url.replace('http:', 'ws:')}/ws`);
    const text = await echo(ws, 'héllo, drill');
    expect([text.data.toString('utf8'), text.isBinary]).toEqual(['héllo, drill', false]);
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    const binary = await echo(ws, bytes);
    expect([[...binary.data], binary.isBinary]).toEqual([[...bytes], true]);
    ws.close(1000, 'done');
    const [code] = await once(ws, 'close');
    expect(code).toBe(1000);
  });

  it('closes a connection sending more than 64 KiB in one message (1009), and keeps serving', async () => {
    await using demo = await app();
    const url = `${demo.url.replace('http:', 'ws:')}/ws`;
    const big = await openWs(url);
    big.send(Buffer.alloc(64 * 1024 + 1));
    const [code] = await once(big, 'close');
    expect(code).toBe(1009);
    const ws = await openWs(url);
    expect((await echo(ws, 'still here')).data.toString()).toBe('still here');
    ws.close();
  });

  it('refuses other upgrade paths, and /ws outside demo mode, with 404; a plain GET /ws is 426', async () => {
    await using demo = await app();
    const base = demo.url.replace('http:', 'ws:');
    expect(await refusedUpgrade(`${base}/chat`)).toBe('Unexpected server response: 404');
    const plain = await request(`${demo.url}/ws`);
    await plain.body.dump();
    expect([plain.statusCode, plain.headers.upgrade]).toEqual([426, 'websocket']);
    await using off = await app({ demo: false });
    expect(await refusedUpgrade(`${off.url.replace('http:', 'ws:')}/ws`)).toBe('Unexpected server response: 404');
  });

  it('closing the app closes open WebSockets instead of waiting for them', async () => {
    const demo = await app();
    const ws = await openWs(`${demo.url.replace('http:', 'ws:')}/ws`);
    const closed = once(ws, 'close');
    await demo.close();
    const [code] = await closed;
    expect(code).toBe(1006); // terminated: no close frame
  });
});

describe('through a tiergate proxy', () => {
  it('the paced download and the WebSocket echo pass through the L7 proxy', async () => {
    await using demo = await app();
    const section = validateConfig({
      version: 1,
      proxy: {
        listeners: [{ address: '127.0.0.1', port: 0 }],
        shutdown_timeout: '2s',
        pools: { app: { servers: [{ address: `127.0.0.1:${demo.port}` }] } },
      },
    }).proxy!;
    const proxy = await startProxy(section, { idleCloseGraceMs: 0 });
    await using _ = { [Symbol.asyncDispose]: () => proxy.close() };
    const url = `127.0.0.1:${proxy.addresses()[0]!.port}`;
    const got = await fetchDownload(`http://${url}/download?bytes=${BYTES}&rate=${RATE}`);
    expect(got).toMatchObject({ status: 200, length: String(BYTES), received: BYTES });
    expect(got.seconds).toBeGreaterThanOrEqual((BYTES / RATE) * 0.5);
    const ws = await openWs(`ws://${url}/ws`);
    expect((await echo(ws, 'via the proxy')).data.toString()).toBe('via the proxy');
    expect([...(await echo(ws, Buffer.from([7, 0, 7]))).data]).toEqual([7, 0, 7]);
    ws.close(1000);
    await once(ws, 'close');
  });
});

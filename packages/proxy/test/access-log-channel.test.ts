import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs, { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { RequestEvent } from '../src/channels.ts';
import { requestChannel } from '../src/channels.ts';
import { ACCESS_LOG_FLUSH_MS, accessLine, accessLogBatch, accessRecord, startAccessLog } from '../src/index.ts';
import { fetchText, server, startTestProxy, startUpstream } from './helpers.ts';

describe('access log', () => {
  it('writes one JSON line per request with the documented fields', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.end('hello');
    });
    await using p = await startTestProxy({ routes: [{ path: '/app', pool: 'app' }], pools: { app: { servers: [server(up)] } } });
    const lines: string[] = [];
    await using _log = startAccessLog({ destination: { write: (l: string) => lines.push(l) } });
    await fetchText(`${p.url}/app/x?y=1`, { headers: { 'x-request-id': 'req-1', 'user-agent': 'ua/1' } });
    await fetchText(`${p.url}/nope`, { method: 'POST', body: 'abc', headers: { 'x-request-id': 'req-2' } });
    expect(lines.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1)).toBe(true);
    const [a, b] = lines.map((l) => JSON.parse(l));
    expect(a).toMatchObject({
      request_id: 'req-1',
      client: '127.0.0.1',
      method: 'GET',
      host: `127.0.0.1:${p.proxy.addresses()[0]!.port}`,
      path: '/app/x?y=1',
      status: 200,
      bytes: 5,
      pool: 'app',
      upstream: up.address,
      upstreams: [up.address],
      attempts: 1,
      user_agent: 'ua/1',
      aborted: false,
    });
    expect(Date.parse(a.time)).toBeGreaterThan(Date.now() - 60_000);
    expect(a.duration_ms).toBeGreaterThanOrEqual(a.upstream_ms);
    expect(b).toMatchObject({ request_id: 'req-2', method: 'POST', path: '/nope', status: 404, error: 'TG_PROXY_NO_ROUTE', attempts: 0 });
    expect(lines).toHaveLength(2);
  });

  it('writes through pino’s asynchronous destination to an fd and flushes every line on close()', async () => {
    await using up = await startUpstream((_req, res) => res.end('x'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const dir = mkdtempSync(join(tmpdir(), 'tg-access-'));
    try {
      const file = join(dir, 'access.log');
      const fd = openSync(file, 'a');
      const log = startAccessLog({ fd });
      await Promise.all(Array.from({ length: 50 }, (_, i) => fetchText(`${p.url}/${i}`, { headers: { 'x-request-id': `r${i}` } })));
      await log.close();
      const ids = readFileSync(file, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).request_id)
        .sort();
      expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => `r${i}`).sort());
      expect(log.dropped()).toBe(0);
      expect(() => closeSync(fd)).toThrow(); // the log closed its fd
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gathers lines that come one event-loop turn apart into few writes, and writes a lone line within the flush period', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-access-'));
    // sonic-boom writes through the fs module's write() (asynchronous: a thread-pool round trip per call).
    const write = vi.spyOn(fs, 'write');
    try {
      const file = join(dir, 'access.log');
      const log = startAccessLog({ fd: openSync(file, 'a') });
      const event = (i: number) => ({ requestId: `r${i}`, time: Date.now(), method: 'GET', url: `/${i}`, status: 200, upstreams: [] });
      const ids = () =>
        readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l).request_id);
      // One line per turn, each after the previous write had time to finish: what a proxy under light load does.
      for (let i = 0; i < 20; i++) {
        requestChannel.publish(event(i));
        await new Promise((r) => setTimeout(r, 2));
      }
      const deadline = Date.now() + 10 * ACCESS_LOG_FLUSH_MS + 5000;
      while (ids().length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(ids()).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
      // ~150-byte lines: a batch holds 20 of them, so a handful of writes at most (one per line before).
      expect(write.mock.calls.length).toBeLessThanOrEqual(5);
      // A lone line is not held until close(): the periodic flush writes it.
      requestChannel.publish(event(20));
      while (ids().length < 21 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(ids()).toHaveLength(21);
      await log.close();
    } finally {
      write.mockRestore();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('to a regular file or /dev/null, gathers lines into writes of up to 64 KiB; to a pipe or socket, of at most 4096 bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-access-'));
    const write = vi.spyOn(fs, 'write');
    try {
      const file = join(dir, 'access.log');
      const log = startAccessLog({ fd: openSync(file, 'a') });
      // 200 lines of ~150 bytes in one turn: ~30 KB, one batch to a file (8 or more writes of 3.5 KiB before).
      for (let i = 0; i < 200; i++)
        requestChannel.publish({ requestId: `r${i}`, time: Date.now(), method: 'GET', url: `/${i}`, status: 200, upstreams: [] });
      await log.close();
      const ids = readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).request_id);
      expect(ids).toEqual(Array.from({ length: 200 }, (_, i) => `r${i}`));
      expect(write.mock.calls.length).toBe(1);
      expect(accessLogBatch(openSync('/dev/null', 'w')).maxWrite).toBe(64 * 1024);
      // A socket (as a pipe or a terminal) keeps writes within PIPE_BUF, atomic for workers sharing it.
      await using up = await startUpstream((_req, res) => res.end('x'));
      const sock = connect(up.port, '127.0.0.1');
      await once(sock, 'connect');
      expect(accessLogBatch((sock as unknown as { _handle: { fd: number } })._handle.fd).maxWrite).toBe(4096);
      sock.destroy();
    } finally {
      write.mockRestore();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes each line exactly as JSON.stringify of its record would, whatever the strings and whichever fields are missing', () => {
    const base: RequestEvent = {
      requestId: 'id',
      time: Date.UTC(2026, 11, 6, 10, 0, 0, 123),
      method: 'GET',
      url: '/a?b=1',
      path: '/a',
      httpVersion: '1.1',
      host: 'example.test',
      clientAddress: '203.0.113.9',
      peerAddress: '127.0.0.1',
      userAgent: 'ua',
      referer: undefined,
      pool: 'app',
      upstream: '127.0.0.1:1',
      upstreams: ['127.0.0.1:2', '127.0.0.1:1'],
      status: 200,
      bytesSent: 5,
      bytesReceived: 0,
      attempts: 2,
      upstreamDurationMs: 1.25,
      durationMs: 2.5,
      error: undefined,
      aborted: false,
      upgraded: true,
    };
    // Strings a client controls: quotes, backslashes, controls, DEL, non-ASCII, a lone surrogate, U+2028.
    const hostile = ['"q"', 'back\\slash', 'ctl\u0000\u001f\n\r\t', '\u007f', 'é漢字🙂', '\ud800x', '\u2028', ''];
    const variants: RequestEvent[] = [base];
    for (const v of hostile)
      variants.push({ ...base, url: v, host: v, userAgent: v, referer: v, requestId: v, method: v, error: v, upstreams: [v] });
    const { host, pool, upstream, userAgent, ...rest } = base;
    variants.push({ ...rest, host: undefined, pool: undefined, upstream: undefined, userAgent: undefined } as RequestEvent);
    variants.push({ ...base, status: 0, bytesSent: -0, durationMs: Number.NaN, upstreamDurationMs: Number.POSITIVE_INFINITY });
    // Two lines in one millisecond, then the next (the reused ISO time must follow the clock).
    variants.push({ ...base, time: base.time + 1 }, { ...base, time: base.time + 1 }, { ...base, time: 0 });
    // Events a subscriber of the public channel might publish with fields missing altogether.
    variants.push({ time: base.time } as RequestEvent, { time: base.time, aborted: true, upstreams: [] } as unknown as RequestEvent);
    for (const e of variants) expect(accessLine(e)).toBe(`${JSON.stringify(accessRecord(e))}\n`);
  });
  it('to a pipe, every write is whole lines within 4096 bytes, also for lines of multi-byte characters', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-access-'));
    const write = vi.spyOn(fs, 'write');
    try {
      const fifo = join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      // The read end first (non-blocking), so that opening the write end does not wait for a reader.
      const reader = new Socket({ fd: openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK), readable: true, writable: false });
      const chunks: Buffer[] = [];
      reader.on('data', (c) => chunks.push(c as Buffer));
      const log = startAccessLog({ fd: openSync(fifo, 'w') });
      // ~580 UTF-16 units but ~1 550 UTF-8 bytes a line: two lines (3.1 KB) are short of a batch, and a third
      // fits by units (3.7 K) but not by bytes (4.6 KB): counting units would overfill a 4096-byte write.
      const path = `/${'€'.repeat(480)}`;
      for (let i = 0; i < 300; i++)
        requestChannel.publish({ requestId: `r${i}`, time: Date.now(), method: 'GET', url: path, status: 200, upstreams: [] });
      await log.close();
      const sizes = write.mock.calls.map((c) => (c[1] as unknown as Buffer).length);
      const ends = write.mock.calls.map((c) => (c[1] as unknown as Buffer).at(-1));
      expect(Math.max(...sizes)).toBeLessThanOrEqual(4096);
      expect(new Set(ends)).toEqual(new Set([0x0a]));
      // Batches, not a write per line: two lines a write.
      expect(sizes.length).toBeLessThanOrEqual(150);
      const lines = () => Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean);
      const deadline = Date.now() + 5000;
      while (lines().length < 300 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      reader.destroy();
      expect(lines().map((l) => JSON.parse(l).request_id)).toEqual(Array.from({ length: 300 }, (_, i) => `r${i}`));
      expect(JSON.parse(lines()[0]!).path).toBe(path);
    } finally {
      write.mockRestore();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drops whole lines past maxBufferBytes and counts each of them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-access-'));
    try {
      const file = join(dir, 'access.log');
      // A file takes 64 KiB batches: with 100 KiB allowed in memory, a burst of ~180 KB in one turn overflows.
      const log = startAccessLog({ fd: openSync(file, 'a'), maxBufferBytes: 100 * 1024 });
      const n = 1200;
      for (let i = 0; i < n; i++)
        requestChannel.publish({ requestId: `r${i}`, time: Date.now(), method: 'GET', url: `/${i}`, status: 200, upstreams: [] });
      await log.close();
      const written = readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
      expect(log.dropped()).toBeGreaterThan(0);
      expect(written + log.dropped()).toBe(n);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { TokenBucketLimiter } from '../src/rate-limiter.ts';
import { clientAgent, fetchText, named, rawExchange, server, startTestProxy, startUpstream } from './helpers.ts';

describe('token bucket (fake clock)', () => {
  it('allows a burst, then one request per 1/rate seconds, and says how long to wait', () => {
    const l = new TokenBucketLimiter({ rate: 2, burst: 3 });
    expect([0, 0, 0].map(() => l.take('a', 0))).toEqual([0, 0, 0]);
    expect(l.take('a', 0)).toBe(500);
    expect(l.take('a', 250)).toBe(250);
    expect(l.take('a', 500)).toBe(0);
    expect(l.take('a', 500)).toBe(500);
    expect(l.take('b', 500)).toBe(0);
    expect(l.take('a', 10_000)).toBe(0);
  });

  it('keeps at most maxBuckets (oldest out) and sweeps buckets that refilled', () => {
    const l = new TokenBucketLimiter({ rate: 1, burst: 1 }, 3);
    for (const k of ['a', 'b', 'c', 'd']) l.take(k, 0);
    expect(l.size).toBe(3);
    expect(l.take('a', 0)).toBe(0); // 'a' was evicted, so it starts full again
    expect(l.take('d', 0)).toBe(1000); // 'd' was kept
    expect(l.take('z', 5_000)).toBe(0);
    expect(l.size).toBe(1); // every bucket idle for burst/rate seconds was swept
    const many = new TokenBucketLimiter({ rate: 10, burst: 5 }, 1000);
    for (let i = 0; i < 100_000; i++) many.take(`10.0.${i >> 8}.${i & 255}`, i);
    expect(many.size).toBeLessThanOrEqual(1000);
  });

  it('refills a known key in place: using a bucket does not make it younger, and a busy key keeps its tokens', () => {
    const l = new TokenBucketLimiter({ rate: 1, burst: 2 }, 3);
    for (const k of ['a', 'b', 'c']) l.take(k, 0);
    expect(l.take('a', 100)).toBe(0); // a's second token
    expect(l.take('a', 200)).toBe(800);
    l.take('d', 300); // full: the oldest bucket, a (in use or not), is forgotten
    expect(l.take('b', 300)).toBe(0); // b's second token: b was kept
    expect(l.take('b', 300)).toBe(700);
    expect(l.take('a', 300)).toBe(0); // a starts full again, and b, the oldest bucket now, goes
    expect(l.take('a', 300)).toBe(0);
    expect(l.take('a', 300)).toBe(1000);
    // The sweep due at 2 s drops only the buckets full by then: c (last used at 0) goes, d and a (at 300) stay.
    expect(l.take('d', 2_200)).toBe(0);
    expect(l.size).toBe(2);
    expect(l.take('a', 2_200)).toBe(0);
    expect(l.size).toBe(2);
  });
});

describe('limits', () => {
  it('rate_limit per client address → 429 TG_PROXY_RATE_LIMITED with Retry-After; other clients unaffected', async () => {
    await using up = await startUpstream(named('a'));
    let now = 1_000_000;
    await using p = await startTestProxy(
      { limits: { rate_limit: { rate: 0.5, burst: 2 } }, pools: { app: { servers: [server(up)] } } },
      undefined,
      { now: () => now },
    );
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetchText(`${p.url}/`)).status);
    expect(statuses).toEqual([200, 200, 429]);
    const limited = await fetchText(`${p.url}/`);
    expect([limited.status, limited.headers['retry-after'], limited.headers['x-tiergate-error']]).toEqual([
      429,
      '2',
      'TG_PROXY_RATE_LIMITED',
    ]);
    await using other = clientAgent('127.0.0.2');
    expect((await fetchText(`${p.url}/`, { dispatcher: other })).status).toBe(200);
    now += 2000;
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
    expect(up.seen).toHaveLength(4);
  });

  it('max_connections: a connection beyond it is closed at accept, without an answer', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await startTestProxy({ limits: { max_connections: 2 }, pools: { app: { servers: [server(up)] } } });
    const port = Number(new URL(p.url).port);
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const s = connect(port, '127.0.0.1');
        held.push(s);
        const got = new Promise<string>((r) => s.once('data', (c) => r(c.toString())));
        s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
        expect(await got).toMatch(/^HTTP\/1.1 200/);
      }
      expect(await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')).toBe('');
      held.pop()!.destroy();
      await new Promise((r) => setTimeout(r, 50));
      expect(await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1.1 200/);
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('after close() begins, a keep-alive response carries Connection: close and the pipelined request is not served', async () => {
    await using slow = await startUpstream((req, res) => {
      req.resume();
      setTimeout(() => res.end('late'), 200);
    });
    const p = await startTestProxy({ pools: { app: { servers: [server(slow)] } } });
    const port = Number(new URL(p.url).port);
    const s = connect(port, '127.0.0.1');
    try {
      const chunks: Buffer[] = [];
      s.on('data', (c) => chunks.push(c));
      s.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\n');
      while (slow.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
      const closing = p.proxy.close();
      // A second request pipelined on the same keep-alive connection arrives while draining.
      s.write('GET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((r) => s.once('close', r));
      await closing;
      const text = Buffer.concat(chunks).toString();
      const [head, body] = text.split('\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1.1 200 OK\r\n/);
      expect(head!.toLowerCase().split('\r\n')).toContain('connection: close');
      expect(body).toBe('late');
      expect(slow.seen.map((r) => r.url)).toEqual(['/1']);
    } finally {
      s.destroy();
    }
  });
  it('keepalive_requests: the last request of a connection is answered with Connection: close and the lean server closes the connection (HTTP/1.1, lean and node)', async () => {
    await using up = await startUpstream(named('a'));
    for (const impl of ['lean', 'node'] as const) {
      await using p = await startTestProxy({
        listeners: [{ address: '127.0.0.1', port: 0, ...(impl === 'node' ? { http1_server: 'node' } : {}) }],
        limits: { keepalive_requests: 3 },
        pools: { app: { servers: [server(up)] } },
      });
      const port = p.proxy.addresses()[0]!.port;
      const seen = up.seen.length;
      // One connection, requests one after another; the socket closes after the third answer.
      const s = connect(port, '127.0.0.1');
      let text = '';
      s.on('data', (c: Buffer) => {
        text += c.toString('latin1');
      });
      const closed = new Promise((r) => s.on('close', r));
      for (let i = 1; i <= 3; i++) {
        s.write(`GET /${i} HTTP/1.1\r\nHost: a\r\n\r\n`);
        const deadline = Date.now() + 3000;
        while ((text.match(/HTTP\/1\.1 200/g) ?? []).length < i && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      }
      // The lean server closes after the last answer, as nginx; node leaves closing to the client that read
      // `Connection: close` (and would answer a request sent anyway with 503).
      if (impl === 'lean') await closed;
      else s.destroy();
      const heads = text.split(/HTTP\/1\.1 /).slice(1);
      expect([impl, heads.length]).toEqual([impl, 3]);
      expect([impl, heads.map((h) => /\r\nconnection: close\r\n/i.test(h))]).toEqual([impl, [false, false, true]]);
      expect(up.seen.length - seen).toBe(3);
    }
  });

  it('keepalive_requests on the lean server: requests pipelined after the last are not served', async () => {
    await using up = await startUpstream(named('a'));
    await using p = await startTestProxy({ limits: { keepalive_requests: 2 }, pools: { app: { servers: [server(up)] } } });
    const port = p.proxy.addresses()[0]!.port;
    const text = await rawExchange(port, 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(4));
    expect(text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(up.seen.map((r) => r.url)).toEqual(['/1', '/1']);
  });

  it('keepalive_requests on HTTP/2: GOAWAY after the last stream, which is served; the next request needs a new connection', async () => {
    const { certFiles, h2client, h2request } = await import('./h2-helpers.ts');
    await using certs = await certFiles();
    await using up = await startUpstream(named('a'));
    await using p = await startTestProxy({
      listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: certs.cert, key: certs.key } }],
      limits: { keepalive_requests: 2 },
      pools: { app: { servers: [server(up)] } },
    });
    await using c = h2client(`https://localhost:${p.proxy.addresses()[0]!.port}`);
    const goaway = new Promise((r) => c.once('goaway', r));
    expect((await h2request(c, { ':path': '/1' })).status).toBe(200);
    expect((await h2request(c, { ':path': '/2' })).status).toBe(200);
    await goaway;
    await expect(h2request(c, { ':path': '/3' })).rejects.toThrow();
    expect(up.seen.map((r) => r.url)).toEqual(['/1', '/2']);
  });
});

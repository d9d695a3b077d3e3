import { describe, expect, it } from 'vitest';
import { fetchText, named, server, startTestProxy, startUpstream } from './helpers.ts';

/** An upstream that resets every connection as soon as a request arrives. */
const resetting = () => startUpstream((req) => req.socket.destroy());

describe('retries (nginx proxy_next_upstream)', () => {
  it('GETs never fail while one of two servers resets every connection (1000 requests)', async () => {
    await using bad = await resetting();
    await using good = await startUpstream(named('good'));
    await using p = await startTestProxy({
      pools: { app: { algorithm: 'round_robin', servers: [server(bad, { max_fails: 0 }), server(good)] } },
    });
    const statuses = new Map<number, number>();
    const total = 1000;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next++;
        const r = await fetchText(`${p.url}/item`);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(Object.fromEntries(statuses)).toEqual({ 200: total });
    expect(bad.seen.length).toBeGreaterThan(total / 4); // the bad server really was tried (and retried past)
    expect(good.seen.length).toBe(total);
  });

  it('does not retry a POST (502), and retries it with non_idempotent', async () => {
    await using bad = await resetting();
    await using good = await startUpstream(named('good'));
    await using p = await startTestProxy({
      pools: {
        plain: { algorithm: 'round_robin', servers: [server(bad, { max_fails: 0 }), server(good)] },
        eager: {
          algorithm: 'round_robin',
          servers: [server(bad, { max_fails: 0 }), server(good)],
          retries: { on: ['error', 'timeout', 'non_idempotent'] },
        },
      },
      routes: [
        { path: '/plain', pool: 'plain' },
        { path: '/eager', pool: 'eager' },
      ],
    });
    const plain = [];
    for (let i = 0; i < 10; i++) plain.push(await fetchText(`${p.url}/plain`, { method: 'POST', body: 'x' }));
    const failed = plain.filter((r) => r.status === 502);
    expect(failed.length).toBe(5);
    expect(failed[0]!.headers['x-tiergate-error']).toBe('TG_PROXY_UPSTREAM_RESET');
    expect(bad.seen.length).toBe(5);
    expect(good.seen.length).toBe(5);
    for (let i = 0; i < 10; i++) expect((await fetchText(`${p.url}/eager`, { method: 'POST' })).status).toBe(200);
  });

  it('retries a PUT with a body when the failure came before the body was read (connection refused)', async () => {
    const gone = await startUpstream(named('gone'));
    const goneAddress = gone.address;
    await gone[Symbol.asyncDispose]();
    await using good = await startUpstream((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (c) => (body += c));
      req.on('end', () => res.end(`got ${body}`));
    });
    await using p = await startTestProxy({
      pools: { app: { algorithm: 'round_robin', servers: [{ address: goneAddress, max_fails: 0 }, server(good)] } },
    });
    for (let i = 0; i < 4; i++) {
      const r = await fetchText(`${p.url}/put`, { method: 'PUT', body: 'payload' });
      expect([r.status, r.body]).toEqual([200, 'got payload']);
    }
  });

  it('retries on listed statuses, never on the same server twice, and passes the last answer through', async () => {
    const failing = (name: string) =>
      startUpstream((req, res) => {
        req.resume();
        res.statusCode = 503;
        res.end(`busy ${name}`);
      }, name);
    await using a = await failing('a');
    await using b = await failing('b');
    await using c = await failing('c');
    await using p = await startTestProxy({
      pools: { app: { servers: [server(a), server(b), server(c)], retries: { on: ['error', 'timeout', 'http_503'] } } },
    });
    const r = await fetchText(`${p.url}/`);
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/^busy [abc]$/);
    expect([a.seen.length, b.seen.length, c.seen.length]).toEqual([1, 1, 1]);
  });

  it('a listed status moves the request to a good server', async () => {
    await using bad = await startUpstream((req, res) => {
      req.resume();
      res.statusCode = 502;
      res.end('bad');
    });
    await using good = await startUpstream(named('good'));
    await using p = await startTestProxy({
      pools: { app: { algorithm: 'round_robin', servers: [server(bad, { max_fails: 0 }), server(good)], retries: { on: ['http_502'] } } },
    });
    for (let i = 0; i < 6; i++) expect((await fetchText(`${p.url}/`)).body).toBe('good');
    // round robin advances on every pick, retries included, so the bad server is tried first each time
    expect(bad.seen.length).toBe(6);
  });

  it('bounds attempts by tries', async () => {
    await using a = await resetting();
    await using b = await resetting();
    await using c = await resetting();
    await using p = await startTestProxy({
      pools: {
        app: { servers: [server(a, { max_fails: 0 }), server(b, { max_fails: 0 }), server(c, { max_fails: 0 })], retries: { tries: 2 } },
      },
    });
    const r = await fetchText(`${p.url}/`);
    expect(r.status).toBe(502);
    expect(a.seen.length + b.seen.length + c.seen.length).toBe(2);
  });

  it('answers 502 TG_PROXY_NO_UPSTREAM (nginx: "no live upstreams") when passive health has failed every server', async () => {
    // Two servers: nginx never marks the only server of a pool as failed.
    await using bad = await resetting();
    await using bad2 = await resetting();
    const failing = { max_fails: 1, fail_timeout: '1m' };
    await using p = await startTestProxy({ pools: { app: { servers: [server(bad, failing), server(bad2, failing)] } } });
    expect((await fetchText(`${p.url}/`)).status).toBe(502);
    const r = await fetchText(`${p.url}/`);
    expect(r.status).toBe(502);
    expect(r.headers['x-tiergate-error']).toBe('TG_PROXY_NO_UPSTREAM');
    expect(r.body).toBe('502 Bad Gateway (TG_PROXY_NO_UPSTREAM)\n');
    expect([bad.seen.length, bad2.seen.length]).toEqual([1, 1]);
  });

  it('answers 502 TG_PROXY_NO_UPSTREAM when every server is at max_conns, as nginx does (no queue)', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await using up = await startUpstream((req, res) => {
      req.resume();
      void held.then(() => res.end('done'));
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(up, { max_conns: 1 })] } } });
    const first = fetchText(`${p.url}/`);
    while (up.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
    const r = await fetchText(`${p.url}/`);
    expect([r.status, r.headers['x-tiergate-error']]).toEqual([502, 'TG_PROXY_NO_UPSTREAM']);
    release();
    expect((await first).body).toBe('done');
    expect(up.seen.length).toBe(1);
  });

  it('uses a backup only when the primaries are unusable', async () => {
    await using primary = await resetting();
    await using backup = await startUpstream(named('backup'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(primary), server(backup, { backup: true })] } } });
    expect((await fetchText(`${p.url}/`)).body).toBe('backup');
    expect((await fetchText(`${p.url}/`)).body).toBe('backup');
    expect(primary.seen.length).toBe(1);
  });
});

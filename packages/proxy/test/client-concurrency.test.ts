import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { ClientConcurrency } from '../src/client-concurrency.ts';
import { clientAgent, fetchText, server, startTestProxy, startUpstream } from './helpers.ts';

describe('ClientConcurrency', () => {
  it('counts per address up to the limit, releases, and sweeps idle addresses at most every 10 s', () => {
    const c = new ClientConcurrency();
    expect(c.acquire('a', 2, 0)).toBe(true);
    expect(c.acquire('a', 2, 1)).toBe(true);
    expect(c.acquire('a', 2, 2)).toBe(false);
    expect(c.acquire('b', 2, 3)).toBe(true);
    c.release('a');
    expect(c.acquire('a', 2, 4)).toBe(true);
    for (const k of ['a', 'a', 'b']) c.release(k);
    expect(c.size).toBe(2); // kept until the next sweep
    expect(c.acquire('c', 2, 9_999)).toBe(true);
    expect(c.size).toBe(3);
    expect(c.acquire('c', 2, 10_000)).toBe(true); // sweep: a and b had nothing in flight
    expect(c.size).toBe(1);
    c.release('a'); // a stray release never goes below zero nor re-adds
    expect(c.size).toBe(1);
  });
});

describe('limits.max_concurrent_per_client (nginx limit_conn)', () => {
  it('a client at its limit gets 429 until one of its requests ends; other clients are not affected', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    await using up = await startUpstream(async (req, res) => {
      req.resume();
      if (req.url === '/slow') await gate;
      res.end('ok');
    });
    await using p = await startTestProxy({ limits: { max_concurrent_per_client: 2 }, pools: { app: { servers: [server(up)] } } });
    await using one = clientAgent('127.0.0.1');
    await using two = clientAgent('127.0.0.2');
    const slow = [fetchText(`${p.url}/slow`, { dispatcher: one }), fetchText(`${p.url}/slow`, { dispatcher: one })];
    try {
      const deadline = Date.now() + 5000;
      while (up.seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const third = await fetchText(`${p.url}/fast`, { dispatcher: one });
      expect(third.status).toBe(429);
      expect(third.headers['x-tiergate-error']).toBe('TG_PROXY_CONCURRENCY_LIMITED');
      expect((await fetchText(`${p.url}/fast`, { dispatcher: two })).status).toBe(200);
    } finally {
      release();
    }
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200]);
    expect((await fetchText(`${p.url}/fast`, { dispatcher: one })).status).toBe(200);
  });

  it('requests that fail (502) or that the client aborts are released too', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      if (req.url === '/hang') return; // never answers: the client gives up
      res.end('ok');
    });
    await using p = await startTestProxy({
      limits: { max_concurrent_per_client: 1 },
      pools: { app: { servers: [server(up)] }, dead: { servers: [{ address: '127.0.0.1:1' }] } },
      routes: [
        { path: '/dead', pool: 'dead' },
        { path: '/', pool: 'app' },
      ],
    });
    for (let i = 0; i < 3; i++) expect((await fetchText(`${p.url}/dead`)).status).toBe(502);
    const aborted = request(`${p.url}/hang`, { signal: AbortSignal.timeout(200) }).catch((e: Error) => e.name);
    expect(await aborted).toMatch(/Abort|Timeout/);
    const deadline = Date.now() + 5000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await fetchText(`${p.url}/fast`)).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(200);
  });
});

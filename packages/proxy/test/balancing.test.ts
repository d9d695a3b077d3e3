import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_CHANNEL, type AttemptEvent } from '../src/index.ts';
import { fetchText, server, startTestProxy, startUpstream } from './helpers.ts';

function recording(log: string[], name: string) {
  return startUpstream((req: IncomingMessage, res: ServerResponse) => {
    log.push(name);
    req.resume();
    res.end(name);
  });
}

describe('balancing end to end', () => {
  it('weighted 5:1:1 gives nginx smooth order a a b a c a a at the upstreams', async () => {
    const log: string[] = [];
    await using a = await recording(log, 'a');
    await using b = await recording(log, 'b');
    await using c = await recording(log, 'c');
    await using p = await startTestProxy({
      pools: { app: { algorithm: 'weighted', servers: [server(a, { weight: 5 }), server(b), server(c)] } },
    });
    for (let i = 0; i < 14; i++) await fetchText(`${p.url}/`);
    expect(log.join(' ')).toBe('a a b a c a a a a b a c a a');
  });

  it('ip_hash sticks to the client address a trusted proxy names in X-Real-IP', async () => {
    const log: string[] = [];
    const ups = [await recording(log, 'a'), await recording(log, 'b'), await recording(log, 'c')];
    try {
      await using p = await startTestProxy({
        trusted_proxies: ['127.0.0.0/8'],
        pools: { app: { algorithm: 'ip_hash', servers: ups.map((u) => server(u)) } },
      });
      const chosen = new Map<string, Set<string>>();
      for (let round = 0; round < 3; round++) {
        for (let i = 1; i <= 30; i++) {
          const ip = `198.51.${i}.7`;
          const r = await fetchText(`${p.url}/`, { headers: { 'x-real-ip': ip } });
          chosen.set(ip, (chosen.get(ip) ?? new Set()).add(r.body));
        }
      }
      for (const servers of chosen.values()) expect(servers.size).toBe(1);
      expect(new Set([...chosen.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);
    } finally {
      for (const u of ups) await u[Symbol.asyncDispose]();
    }
  });

  it('hash $request_uri consistent: the same URI always reaches the same server', async () => {
    const log: string[] = [];
    const ups = [await recording(log, 'a'), await recording(log, 'b'), await recording(log, 'c')];
    try {
      await using p = await startTestProxy({
        pools: { app: { algorithm: 'hash', hash_key: '$request_uri', consistent: true, servers: ups.map((u) => server(u)) } },
      });
      const chosen = new Map<string, Set<string>>();
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 30; i++) {
          const uri = `/item/${i}?v=${i % 3}`;
          chosen.set(uri, (chosen.get(uri) ?? new Set()).add((await fetchText(`${p.url}${uri}`)).body));
        }
      }
      for (const servers of chosen.values()) expect(servers.size).toBe(1);
      expect(new Set([...chosen.values()].map((s) => [...s][0])).size).toBe(3);
    } finally {
      for (const u of ups) await u[Symbol.asyncDispose]();
    }
  });

  it('active health checks take a dead server out of rotation', async () => {
    const dead = await startUpstream(() => {});
    const deadAddress = dead.address;
    await dead[Symbol.asyncDispose]();
    const log: string[] = [];
    await using good = await recording(log, 'good');
    await using p = await startTestProxy({
      pools: {
        app: {
          algorithm: 'round_robin',
          servers: [{ address: deadAddress, max_fails: 0 }, server(good)],
          health_check: { type: 'tcp', interval: '100ms', timeout: '200ms', fall: 1, rise: 1 },
          retries: { on: [] },
        },
      },
    });
    const deadline = Date.now() + 5000;
    while (p.proxy.status().pools[0]!.servers[0]!.healthy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(p.proxy.status().pools[0]!.servers[0]!.healthy).toBe(false);
    const attempts: AttemptEvent[] = [];
    const onAttempt = (m: unknown) => attempts.push(m as AttemptEvent);
    subscribe(ATTEMPT_CHANNEL, onAttempt);
    try {
      for (let i = 0; i < 10; i++) expect((await fetchText(`${p.url}/`)).status).toBe(200);
    } finally {
      unsubscribe(ATTEMPT_CHANNEL, onAttempt);
    }
    expect(attempts.map((a) => a.upstream)).toEqual(Array(10).fill(good.address));
  });
});

import type { Server } from 'node:http';
import { isTgError } from '@tiergate/errors';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { fetchText, named, proxySection, server, startTestProxy, startUpstream, type Upstream } from './helpers.ts';

const LISTENER = { address: '127.0.0.1', port: 0 };

function connections(s: Server): Promise<number> {
  return new Promise((resolve, reject) => s.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** Waits (bounded: 5 s) for something that happens asynchronously after a reload. */
async function until(ok: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await ok()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** A request to an upstream answering /health with `health` and anything else with its name. */
function withHealth(name: string, health: number): Parameters<typeof startUpstream>[0] {
  return (req, res) => {
    req.resume();
    if (req.url === '/health') res.writeHead(health).end();
    else res.end(name);
  };
}

describe('reload', () => {
  it('loses no request while pools change under load, and closes removed servers’ connections', async () => {
    const ups: Upstream[] = [];
    try {
      for (const n of ['a', 'b', 'c']) ups.push(await startUpstream(named(n)));
      const [a, b, c] = ups as [Upstream, Upstream, Upstream];
      const sets = [[a, b], [b, c], [c, a], [a], [b, c]] as const;
      const section = (i: number) =>
        proxySection({
          listeners: [LISTENER],
          pools: { app: { algorithm: i % 2 ? 'round_robin' : 'least_conn', servers: sets[i % sets.length]!.map((u) => server(u)) } },
        });
      await using p = await startTestProxy({ pools: { app: { servers: [server(a), server(b)] } } });
      await using agent = Object.assign(new Agent({ connections: 20 }), { [Symbol.asyncDispose]: () => agent.close() });
      const statuses = new Map<number, number>();
      let sent = 0;
      const total = 3000;
      const worker = async () => {
        while (sent < total) {
          sent++;
          const res = await request(`${p.url}/`, { dispatcher: agent });
          await res.body.text();
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        }
      };
      const load = Promise.all(Array.from({ length: 20 }, worker));
      let reloads = 0;
      while (sent < total && reloads < 40) {
        await p.proxy.reload(section(reloads++));
        await new Promise((r) => setTimeout(r, 5));
      }
      await load;
      expect(reloads).toBeGreaterThan(5);
      expect([...statuses]).toEqual([[200, total]]);
      // End on [a] only: b and c are drained and their connections closed.
      await p.proxy.reload(section(3));
      await until(async () => (await connections(b.server)) + (await connections(c.server)) === 0);
      expect([await connections(b.server), await connections(c.server)]).toEqual([0, 0]);
      expect((await fetchText(`${p.url}/`)).body).toBe('a');
      expect(p.proxy.status().pools[0]!.servers.map((s) => s.address)).toEqual([a.address]);
    } finally {
      for (const u of ups) await u[Symbol.asyncDispose]();
    }
  });

  it('a request in flight on a removed server finishes there; new requests go to the new servers', async () => {
    await using slow = await startUpstream((req, res) => {
      req.resume();
      setTimeout(() => res.end('slow'), 300);
    });
    await using fresh = await startUpstream(named('fresh'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(slow)] } } });
    const inFlight = fetchText(`${p.url}/`);
    await until(() => slow.seen.length === 1);
    await p.proxy.reload(proxySection({ listeners: [LISTENER], pools: { app: { servers: [server(fresh)] } } }));
    expect((await fetchText(`${p.url}/`)).body).toBe('fresh');
    expect(await inFlight).toMatchObject({ status: 200, body: 'slow' });
    await until(async () => (await connections(slow.server)) === 0);
    expect(await connections(slow.server)).toBe(0);
  });

  it('rejects listener changes with TG_CONFIG_INVALID and keeps serving the running config', async () => {
    await using a = await startUpstream(named('a'));
    await using b = await startUpstream(named('b'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(a)] } } });
    const next = proxySection({ listeners: [{ address: '127.0.0.1', port: 0 }, LISTENER], pools: { app: { servers: [server(b)] } } });
    const err = await p.proxy.reload(next).catch((e: unknown) => e);
    expect(isTgError(err, 'TG_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toBe('listeners cannot change on reload');
    expect((await fetchText(`${p.url}/`)).body).toBe('a');
    // A later valid reload still works (the failed one did not wedge the queue).
    await p.proxy.reload(proxySection({ listeners: [LISTENER], pools: { app: { servers: [server(b)] } } }));
    expect((await fetchText(`${p.url}/`)).body).toBe('b');
  });

  it('an unchanged pool keeps its balancer state; a changed pool starts fresh; routes and limits swap', async () => {
    const dead = await startUpstream(named('x'));
    await dead[Symbol.asyncDispose]();
    await using ok = await startUpstream(named('ok'));
    await using other = await startUpstream(named('other'));
    const pools = { app: { algorithm: 'round_robin', servers: [server(dead), server(ok)] } };
    await using p = await startTestProxy({ pools }, () => 0);
    expect((await fetchText(`${p.url}/`)).body).toBe('ok');
    const failed = () => p.proxy.status().pools.find((x) => x.name === 'app')!.servers[0]!.failed;
    expect(failed()).toBe(true);
    await p.proxy.reload(
      proxySection({
        listeners: [LISTENER],
        routes: [
          { path: '/other', pool: 'more' },
          { path: '/', pool: 'app' },
        ],
        limits: { max_body_size: 10 },
        pools: { ...pools, more: { servers: [server(other)] } },
      }),
    );
    expect(failed()).toBe(true);
    expect((await fetchText(`${p.url}/other/x`)).body).toBe('other');
    expect((await fetchText(`${p.url}/`, { method: 'POST', body: 'x'.repeat(11) })).status).toBe(413);
    await p.proxy.reload(
      proxySection({ listeners: [LISTENER], pools: { app: { ...pools.app, servers: [server(dead), server(ok, { weight: 2 })] } } }),
    );
    expect(failed()).toBe(false);
    expect((await fetchText(`${p.url}/other/x`)).body).toBe('ok');
  });

  it('a server added to a health-checked pool takes traffic only after a passing check', async () => {
    await using a = await startUpstream(withHealth('a', 200));
    await using sick = await startUpstream(withHealth('sick', 500));
    await using well = await startUpstream(withHealth('well', 200));
    const check = { type: 'http', path: '/health', interval: '100ms', timeout: '500ms', jitter: 0 };
    const pool = (servers: Upstream[]) => ({ algorithm: 'round_robin', health_check: check, servers: servers.map((u) => server(u)) });
    await using p = await startTestProxy({ pools: { app: pool([a]) } }, () => 0);
    const bodies = async (n: number) => {
      const out = new Set<string>();
      for (let i = 0; i < n; i++) out.add((await fetchText(`${p.url}/`)).body);
      return out;
    };
    await p.proxy.reload(proxySection({ listeners: [LISTENER], pools: { app: pool([a, sick]) } }));
    expect(await bodies(6)).toEqual(new Set(['a']));
    expect(p.proxy.status().pools[0]!.servers.map((s) => s.healthy)).toEqual([true, false]);
    // The check of the kept server went on (same monitor), and the reload waited for well's first check.
    const checksOfA = p.proxy.status().pools[0]!.servers[0]!.check!.checks;
    await p.proxy.reload(proxySection({ listeners: [LISTENER], pools: { app: pool([a, well]) } }));
    expect(p.proxy.status().pools[0]!.servers[0]!.check!.checks).toBeGreaterThanOrEqual(checksOfA);
    expect(await bodies(4)).toEqual(new Set(['a', 'well']));
  });

  it('a reload that fails while building leaves the running generation and its connections intact', async () => {
    await using a = await startUpstream(named('a'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(a)] } } });
    expect((await fetchText(`${p.url}/`)).body).toBe('a');
    const valid = proxySection({
      listeners: [LISTENER],
      routes: [{ path: '/', pool: 'app' }],
      pools: { app: { algorithm: 'round_robin', servers: [server(a)] } },
    });
    // Not something validation lets through: a route to a pool that does not exist, built by hand.
    const broken = { ...valid, routes: [{ ...valid.routes[0]!, pool: 'nope' }] };
    const err = await p.proxy.reload(broken).catch((e: unknown) => e);
    expect(isTgError(err, 'TG_CONFIG_INVALID')).toBe(true);
    // The changed pool built for the failed reload shared a's undici Pool: it must still be open.
    for (let i = 0; i < 3; i++) expect(await fetchText(`${p.url}/`)).toMatchObject({ status: 200, body: 'a' });
  });

  it('rejects after close() began', async () => {
    await using a = await startUpstream(named('a'));
    const p = await startTestProxy({ pools: { app: { servers: [server(a)] } } });
    await p.proxy.close();
    const err = await p.proxy
      .reload(proxySection({ listeners: [LISTENER], pools: { app: { servers: [server(a)] } } }))
      .catch((e: unknown) => e);
    expect(isTgError(err, 'TG_PROXY_SHUTTING_DOWN')).toBe(true);
  });
});

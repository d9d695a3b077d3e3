import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  admin,
  configDir,
  type ProxyProc,
  proxyYaml,
  runCli,
  startLoad,
  startProxyProc,
  startUpstream,
  until,
} from './proxy-ops-helpers.ts';

/**
 * The L4-aware drain of a real `tiergate proxy` process (docs/proxy.md, Leaving): on SIGTERM, `monitor_uri`
 * answers 503 at once on every worker, while the listeners keep serving for `drain_delay` (the time a director's
 * http check needs to quiesce the node); only then do they close and the drain of requests in flight begins.
 */
const MONITOR = '/-/tiergate/health';
const DELAY_MS = 1500;
const extra = `  monitor_uri: ${MONITOR}\n  drain_delay: ${DELAY_MS}ms\n`;

/** GET `monitor_uri` on a new connection (as a director's check does): its status, body and Connection header. */
async function probe(url: string): Promise<{ status: number; body: string; connection: string | undefined }> {
  const r = await request(`${url}${MONITOR}`, { headers: { 'x-seq': 'monitor', connection: 'close' }, reset: true });
  return { status: r.statusCode, body: await r.body.text(), connection: r.headers.connection as string | undefined };
}

describe.each([1, 2])('tiergate proxy leaving (workers: %i)', (workers) => {
  const cleanup: (() => PromiseLike<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  async function start(): Promise<{ p: ProxyProc; seen: Set<string> }> {
    const up = await startUpstream('A', 2);
    cleanup.push(() => up[Symbol.asyncDispose]());
    const cfg = configDir(proxyYaml({ workers, servers: [up.address], extra }));
    cleanup.push(() => cfg[Symbol.dispose]());
    const p = await startProxyProc(cfg.file);
    cleanup.push(() => p[Symbol.asyncDispose]());
    return { p, seen: up.seen };
  }

  it('SIGTERM (to every process): monitor_uri answers 503 at once, new connections are served for drain_delay, then exit 0', async () => {
    const { p, seen } = await start();
    // Answered by the proxy itself, never forwarded.
    for (let i = 0; i < 4; i++) expect(await probe(p.url)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(seen.has('monitor')).toBe(false);
    // Every request on a new connection, as clients arrive through IPVS until the director quiesces the node.
    const load = startLoad(p.url, { concurrency: 4, maxRequests: 20_000, maxMs: 20_000, fresh: true });
    await until(() => load.result.ok > 20, 10_000, 'load to start');
    // As systemd's default KillMode=control-group does: SIGTERM to every process of the unit at once.
    const status = JSON.parse((await admin(p.admin, '/status')).body) as { workers: { pid: number }[] };
    const workerPids = status.workers.map((w) => w.pid).filter((pid) => pid !== p.child.pid);
    expect(workerPids).toHaveLength(workers === 1 ? 0 : workers);
    const sentAtSignal = load.result.sent;
    const signalled = Date.now();
    p.child.kill('SIGTERM');
    for (const pid of workerPids) process.kill(pid, 'SIGTERM');
    // At once, on every worker (each probe is a new connection, which the cluster hands to either worker).
    await until(async () => (await probe(p.url)).status === 503, 1000, 'monitor_uri to answer 503');
    const failing = await Promise.all(Array.from({ length: 6 }, () => probe(p.url)));
    expect(failing.map((f) => [f.status, f.body, f.connection])).toEqual(Array(6).fill([503, 'draining\n', 'close']));
    // A keep-alive client is told to reconnect (Connection: close), and is still served.
    const kept = await request(p.url, { headers: { 'x-seq': 'kept' } });
    expect([kept.statusCode, kept.headers.connection, await kept.body.text()]).toEqual([200, 'close', 'A']);
    // Still serving, well inside the delay.
    await until(() => Date.now() - signalled >= DELAY_MS - 300, DELAY_MS, 'most of the delay');
    load.stop();
    const r = await load.done;
    expect(p.child.exitCode).toBe(null);
    expect(r.sent - sentAtSignal).toBeGreaterThan(20);
    expect([r.errors, r.statuses, r.ok]).toEqual([[], {}, r.sent]);
    expect(await p.exited).toBe(0);
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(DELAY_MS);
  });

  it('POST /healthcheck/fail and /healthcheck/ok flip monitor_uri on every worker; requests are served throughout', async () => {
    const { p } = await start();
    const fail = await admin(p.admin, '/healthcheck/fail', undefined, 'POST');
    expect([fail.status, JSON.parse(fail.body)]).toEqual([200, { healthCheck: 'fail' }]);
    const failing = await Promise.all(Array.from({ length: 6 }, () => probe(p.url)));
    expect(failing.map((f) => f.status)).toEqual(Array(6).fill(503));
    expect((await admin(p.admin, '/readyz')).status).toBe(503);
    const served = await request(p.url, { headers: { 'x-seq': 'while-failing' } });
    expect([served.statusCode, served.headers.connection, await served.body.text()]).toEqual([200, 'close', 'A']);
    expect((await admin(p.admin, '/healthcheck/ok', undefined, 'POST')).status).toBe(200);
    const passing = await Promise.all(Array.from({ length: 6 }, () => probe(p.url)));
    expect(passing.map((f) => f.status)).toEqual(Array(6).fill(200));
    const again = await request(p.url, { headers: { 'x-seq': 'after' } });
    expect([again.statusCode, again.headers.connection, await again.body.text()]).toEqual([200, 'keep-alive', 'A']);
    expect((await admin(p.admin, '/healthcheck/fail')).status).toBe(405);
  });
});

describe('tiergate realserver down with a running proxy', () => {
  it("fails the proxy's health check and waits its drain delay before removing the VIPs, serving meanwhile", async () => {
    await using up = await startUpstream('A', 2);
    using cfg = configDir(proxyYaml({ workers: 1, servers: [up.address], extra }));
    await using p = await startProxyProc(cfg.file);
    // Nothing to undo on this host (an empty state file): the test is the order of what `down` does first.
    const state = join(cfg.file, '..', 'realserver.json');
    const started = Date.now();
    const down = runCli(['realserver', 'down', '-c', cfg.file, '--state-file', state, '--proxy-admin', p.admin]);
    await until(async () => (await probe(p.url)).status === 503, 2000, 'monitor_uri to answer 503');
    // The node still serves while the director quiesces it.
    const served = await request(p.url, { headers: { 'x-seq': 'during-down' } });
    expect([served.statusCode, await served.body.text()]).toEqual([200, 'A']);
    const r = await down;
    expect(Date.now() - started).toBeGreaterThanOrEqual(DELAY_MS);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toBe(
      `proxy at ${p.admin}: health check failing (${MONITOR})\nwaiting 1.5 s (proxy.drain_delay) for the director to quiesce this node\nnothing to undo\n`,
    );
    expect((await probe(p.url)).status).toBe(503);
    // `realserver up` needs root for the VIP; the health-check half is what `down` left behind, undone by hand here
    // through the same admin call `up` makes.
    expect((await admin(p.admin, '/healthcheck/ok', undefined, 'POST')).status).toBe(200);
    expect((await probe(p.url)).status).toBe(200);
  });
});

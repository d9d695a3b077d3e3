import { resolve } from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { admin, configDir, metricSum, proxyYaml, startProxyProc, startUpstream, until } from './proxy-ops-helpers.ts';

/**
 * What a `tiergate proxy` process does when something goes wrong inside it: an error nothing caught (injected
 * by test/proxy-fault-preload.ts on SIGUSR2), and a cluster worker that stops answering (SIGSTOP).
 */
const PRELOAD = resolve(import.meta.dirname, 'proxy-fault-preload.ts');
const faultEnv = (kind: 'throw' | 'reject') => ({ NODE_OPTIONS: `--import=${PRELOAD}`, TG_FAULT: kind });

const get = async (url: string) => {
  const r = await request(`${url}/`, { reset: true, headersTimeout: 10_000 });
  return { status: r.statusCode, body: await r.body.text() };
};

describe('tiergate proxy (workers: 1), an error nothing caught', () => {
  for (const [kind, event] of [
    ['throw', 'uncaughtException'],
    ['reject', 'unhandledRejection'],
  ] as const)
    it(`${event}: logged with its code, the request in flight completes, exit 1`, async () => {
      await using up = await startUpstream('A', 1_500);
      using cfg = configDir(proxyYaml({ workers: 1, servers: [up.address] }));
      await using p = await startProxyProc(cfg.file, 30_000, { env: faultEnv(kind) });
      const inFlight = get(p.url);
      await new Promise((r) => setTimeout(r, 300));
      p.child.kill('SIGUSR2');
      expect(await inFlight).toEqual({ status: 200, body: 'A' });
      expect(await p.exited).toBe(1);
      // The 'exit' event may come before the last of stderr is read.
      await until(() => /"msg":"stopped"/.test(p.stderr()), 5_000, 'the last log line');
      const fatal = p
        .stderr()
        .split('\n')
        .find((l) => l.includes(`"kind":"${event}"`));
      expect(JSON.parse(fatal!)).toMatchObject({ level: 60, error: { code: 'E_INJECTED', message: 'injected fault' } });
    });
});

describe('tiergate proxy (workers: 2), a failing or wedged worker', () => {
  const TOKEN = 't';
  const pids = async (base: string): Promise<number[]> =>
    JSON.parse((await admin(base, '/status', TOKEN)).body).workers.map((w: { pid: number }) => w.pid);

  it('a worker with an uncaught exception drains its requests, exits 1 and is replaced', async () => {
    await using up = await startUpstream('A', 1_500);
    using cfg = configDir(proxyYaml({ workers: 2, servers: [up.address], token: TOKEN }));
    await using p = await startProxyProc(cfg.file, 30_000, { env: faultEnv('throw') });
    const before = await pids(p.admin);
    // Fresh connections, handed to the workers in turn: both have requests in flight.
    const inFlight = Array.from({ length: 4 }, () => get(p.url));
    await new Promise((r) => setTimeout(r, 300));
    process.kill(before[0]!, 'SIGUSR2');
    expect(await Promise.all(inFlight)).toEqual(Array.from({ length: 4 }, () => ({ status: 200, body: 'A' })));
    await until(async () => (await pids(p.admin)).length === 2 && !(await pids(p.admin)).includes(before[0]!), 15_000, 'the replacement');
    await until(() => /"code":1,.*"msg":"worker exited; replacing it"/.test(p.stderr()), 5_000, 'the exit logged');
    expect(p.stderr()).toMatch(/"kind":"uncaughtException".*"code":"E_INJECTED"/);
    expect(p.child.exitCode).toBeNull();
  });

  it('an uncaught exception in the primary drains every worker (requests in flight complete), exit 1', async () => {
    await using up = await startUpstream('A', 1_500);
    using cfg = configDir(proxyYaml({ workers: 2, servers: [up.address], token: TOKEN }));
    await using p = await startProxyProc(cfg.file, 30_000, { env: faultEnv('throw') });
    const inFlight = Array.from({ length: 4 }, () => get(p.url));
    await new Promise((r) => setTimeout(r, 300));
    p.child.kill('SIGUSR2');
    expect(await Promise.all(inFlight)).toEqual(Array.from({ length: 4 }, () => ({ status: 200, body: 'A' })));
    expect(await p.exited).toBe(1);
    await until(() => /"msg":"stopped"/.test(p.stderr()), 5_000, 'the last log line');
    expect(p.stderr()).toMatch(/"kind":"uncaughtException".*"code":"E_INJECTED"/);
    expect(p.stderr()).toMatch(/"signal":"uncaughtException","msg":"draining all workers"/);
  });

  it('is found by the liveness ping, killed and replaced', async () => {
    await using up = await startUpstream('A');
    using cfg = configDir(proxyYaml({ workers: 2, servers: [up.address], token: TOKEN }));
    await using p = await startProxyProc(cfg.file);
    const before = await pids(p.admin);
    expect(before).toHaveLength(2);
    process.kill(before[0]!, 'SIGSTOP');
    try {
      // No /status asked meanwhile: the primary's ping (every 5 s, 5 s to answer) finds it within 10 s. The wait is
      // 30 s: once on a loaded CI machine (a QEMU guest's teardown just before) 15 s ran out.
      await until(() => /worker did not answer; killing and replacing it/.test(p.stderr()), 30_000, 'the wedged worker killed');
    } finally {
      try {
        process.kill(before[0]!, 'SIGCONT');
      } catch {} // killed already
    }
    await until(async () => (await pids(p.admin)).length === 2, 10_000, 'two workers again');
    const after = await pids(p.admin);
    expect(after).toContain(before[1]);
    expect(after).not.toContain(before[0]);
    expect(metricSum((await admin(p.admin, '/metrics', TOKEN)).body, 'tiergate_proxy_worker_restarts_total')).toBe(1);
  });

  it('a reload while one worker is wedged: it is replaced and every worker runs the new config', async () => {
    await using a = await startUpstream('A');
    await using b = await startUpstream('B');
    using cfg = configDir(proxyYaml({ workers: 2, servers: [a.address], token: TOKEN }));
    await using p = await startProxyProc(cfg.file);
    const before = await pids(p.admin);
    process.kill(before[0]!, 'SIGSTOP');
    try {
      cfg.write(proxyYaml({ workers: 2, servers: [b.address], token: TOKEN }));
      const reload = await admin(p.admin, '/reload', TOKEN, 'POST');
      expect([reload.status, reload.body]).toEqual([200, expect.stringContaining('"reloaded": true')]);
    } finally {
      try {
        process.kill(before[0]!, 'SIGCONT');
      } catch {}
    }
    await until(async () => (await pids(p.admin)).length === 2 && !(await pids(p.admin)).includes(before[0]!), 15_000, 'the replacement');
    // Fresh connections are spread over both workers: every one is answered by the new config's server.
    const bodies = new Set<string>();
    for (let i = 0; i < 20; i++) bodies.add((await get(p.url)).body);
    expect([...bodies]).toEqual(['B']);
  });
});

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  admin,
  configDir,
  metricSum,
  type ProxyProc,
  proxyYaml,
  startLoad,
  startProxyProc,
  startUpstream,
  until,
} from './proxy-ops-helpers.ts';

/** `workers: 1`: the proxy runs in the CLI process itself (no cluster). */
describe('tiergate proxy, workers: 1', () => {
  const cleanup: (() => PromiseLike<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  async function start(yaml: string): Promise<{ p: ProxyProc; write(y: string): void }> {
    const cfg = configDir(yaml);
    cleanup.push(() => cfg[Symbol.dispose]());
    const p = await startProxyProc(cfg.file);
    cleanup.push(() => p[Symbol.asyncDispose]());
    return { p, write: cfg.write };
  }

  it('reloads on SIGHUP under load without a failed request; a bad file is logged and changes nothing', async () => {
    await using a = await startUpstream('A', 2);
    await using b = await startUpstream('B', 2);
    const { p, write } = await start(proxyYaml({ workers: 1, servers: [a.address] }));
    expect(p.stdout()).toMatch(/^workers: 1$/m);
    const load = startLoad(p.url, { concurrency: 6, maxRequests: 3000, maxMs: 20_000 });
    await until(() => load.result.ok > 100, 10_000, 'load to start');
    write(proxyYaml({ workers: 1, servers: ['bad address'] }));
    p.child.kill('SIGHUP');
    await until(() => /reload rejected; the running config stays/.test(p.stderr()), 10_000, 'the rejection');
    write(proxyYaml({ workers: 1, servers: [b.address] }));
    p.child.kill('SIGHUP');
    await until(() => b.seen.size > 100, 10_000, 'B to take the traffic');
    load.stop();
    const r = await load.done;
    expect([r.errors, r.statuses, r.ok]).toEqual([[], {}, r.sent]);
    const metrics = (await admin(p.admin, '/metrics')).body;
    expect(metricSum(metrics, 'tiergate_proxy_reloads_total', { result: 'ok' })).toBe(1);
    expect(metricSum(metrics, 'tiergate_proxy_reloads_total', { result: 'error' })).toBe(1);
    expect(metricSum(metrics, 'tiergate_proxy_requests_total', { code: '2xx' })).toBe(r.ok);
  });

  it('POST /reload refuses a config error and a restart-only change with their codes, then applies a good file; the serving image left no plan behind', async () => {
    // The serving process reads its file for a reload in a child (proxy-runtime/single-image.ts): its answers map back.
    await using a = await startUpstream('A');
    await using b = await startUpstream('B');
    const tmp = mkdtempSync(join(tmpdir(), 'tg-plan-'));
    cleanup.push(() => rmSync(tmp, { recursive: true, force: true }));
    const cfg = configDir(proxyYaml({ workers: 1, servers: [a.address], token: 'secret' }));
    cleanup.push(() => cfg[Symbol.dispose]());
    // The image before the execve writes the plan under TMPDIR; the serving image removes it as it reads it.
    const p = await startProxyProc(cfg.file, 30_000, { env: { TMPDIR: tmp } });
    cleanup.push(() => p[Symbol.asyncDispose]());
    expect(readdirSync(tmp).filter((f) => f.startsWith('tiergate-proxy-'))).toEqual([]);
    const served = async () => (await (await request(p.url)).body.text()) as string;
    expect(await served()).toBe('A');

    cfg.write(proxyYaml({ workers: 1, servers: ['bad address'], token: 'secret' }));
    const invalid = await admin(p.admin, '/reload', 'secret', 'POST');
    expect([invalid.status, JSON.parse(invalid.body).error]).toEqual([
      500,
      {
        code: 'TG_CONFIG_INVALID',
        message: expect.stringMatching(/tiergate\.yaml:\d+:\d+: proxy\.pools\.app\.servers\[0\]\.address: expected host:port/),
      },
    ]);
    cfg.write(proxyYaml({ workers: 2, servers: [b.address], token: 'secret' }));
    const restart = await admin(p.admin, '/reload', 'secret', 'POST');
    expect([restart.status, JSON.parse(restart.body).error]).toEqual([
      409,
      { code: 'TG_PROXY_RELOAD_REJECTED', message: `${cfg.file}: proxy.workers changed; restart the proxy to apply it` },
    ]);
    expect(await served()).toBe('A');

    cfg.write(proxyYaml({ workers: 1, servers: [b.address], token: 'secret' }));
    const ok = await admin(p.admin, '/reload', 'secret', 'POST');
    expect([ok.status, ok.body]).toEqual([200, expect.stringContaining('"reloaded": true')]);
    expect(await served()).toBe('B');
    const metrics = (await admin(p.admin, '/metrics', 'secret')).body;
    expect(metricSum(metrics, 'tiergate_proxy_reloads_total', { result: 'error' })).toBe(2);
  });

  it("with no writable TMPDIR for the serving image's plan it serves from the process that read the file, and says so", async () => {
    await using a = await startUpstream('A');
    const cfg = configDir(proxyYaml({ workers: 1, servers: [a.address] }));
    cleanup.push(() => cfg[Symbol.dispose]());
    const p = await startProxyProc(cfg.file, 30_000, { env: { TMPDIR: join(cfg.file, 'not-a-dir') } });
    cleanup.push(() => p[Symbol.asyncDispose]());
    expect(await (await request(p.url)).body.text()).toBe('A');
    expect(p.stderr()).toMatch(/writing the serving image's plan under .*not-a-dir failed: serving from this process/);
    // It reloads in the process too.
    expect((await admin(p.admin, '/reload', undefined, 'POST')).status).toBe(200);
  });

  it('SIGTERM drains under load: requests in flight complete, keep-alive clients get Connection: close, exit 0', async () => {
    await using slow = await startUpstream('S', 50);
    const { p } = await start(proxyYaml({ workers: 1, servers: [slow.address], accessLog: true }));
    const load = startLoad(p.url, { concurrency: 8, maxRequests: 3000, maxMs: 20_000 });
    await until(() => load.result.ok > 40, 10_000, 'load to start');
    expect((await admin(p.admin, '/readyz')).status).toBe(200);
    p.child.kill('SIGTERM');
    const r = await load.done;
    expect(await p.exited).toBe(0);
    expect(r.errors.filter((e) => slow.seen.has(e.seq))).toEqual([]);
    expect(r.statuses).toEqual({});
    expect(r.sawClose + r.errors.length).toBe(8);
    // Every client connection saw `Connection: close` and none failed: the drain's grace serves requests
    // written on keep-alive connections instead of closing them as idle under the client.
    expect(r.errors).toEqual([]);
    expect(r.sawClose).toBe(8);
    // Every request answered is in the access log on stdout, one parseable line each.
    const records = p
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    expect(
      records
        .filter((x) => x.status === 200)
        .map((x) => x.request_id)
        .sort(),
    ).toHaveLength(r.ok);
    expect(records.every((x) => x.upstream === slow.address && x.method === 'GET' && x.bytes === 1)).toBe(true);
  });
});

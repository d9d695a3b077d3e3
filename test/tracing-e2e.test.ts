import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type CollectedSpan, httpConventionViolations, startOtlpReceiver, startRedis } from '@tiergate/testkit';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { ancestorsOf, spawnTiergate, type TiergateChild, tempDir } from './tracing-harness.ts';

// One request through the REAL processes: `tiergate proxy` (tracing on, config file pointing at a real
// OTLP receiver) → two `tiergate demo-app` processes → a real redis-server. Three proxies share the apps:
//   traced    1 worker, sampling 1: the span tree proxy → app → Redis in one trace; a retry (an upstream
//             that resets every connection, GET) shows as two CLIENT spans of the same trace
//   sampled   2 workers (each starts its own SDK), sampling 0.5: about half the traces kept, and an app
//             records exactly the traces the proxy kept (the unsampled traceparent stops it starting its own)
//   off       tracing off: nothing exported, and a client's traceparent does not reach the upstream

/**
 * A loopback upstream recording the requests it saw: `reset` destroys every connection as soon as a request
 * arrives, otherwise it answers 200.
 */
async function startUpstream(reset: boolean): Promise<{ address: string; seen: IncomingMessage[] } & AsyncDisposable> {
  const seen: IncomingMessage[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    seen.push(req);
    if (reset) req.socket.destroy();
    else res.end('ok');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

const hostPort = (url: string) => new URL(url).host;

/** A proxy section: pool `apps` by default, pool `flaky` (the resetter first, then `fallback`) for Host flaky.test. */
function proxySection(apps: string[], resetter: string, fallback: string, workers: number) {
  return {
    listeners: [{ address: '127.0.0.1', port: 0 }],
    admin: { address: '127.0.0.1', port: 0 },
    workers,
    pools: {
      apps: { algorithm: 'round_robin', servers: apps.map((address) => ({ address })) },
      flaky: { algorithm: 'round_robin', servers: [{ address: resetter, max_fails: 0 }, { address: fallback }] },
    },
    routes: [
      { host: 'flaky.test', path: '/', pool: 'flaky' },
      { path: '/', pool: 'apps' },
    ],
  };
}

/** GET through undici's request (fetch would drop the Host header the flaky route needs). */
async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await request(`${base}${path}`, { headers: { accept: 'application/json', 'user-agent': 'tiergate-e2e', ...headers } });
  await res.body.arrayBuffer();
  return res.statusCode;
}

const listeningUrl = async (child: TiergateChild) => (await child.waitForStdout(/listening on (\S+)/))[1]!;
/** Which proxy made a span: each proxy's file sets the resource attribute `test.proxy`. */
const proxyOf = (s: CollectedSpan) => s.resource['test.proxy'];

describe('tracing end to end: tiergate proxy → tiergate demo-app → Redis', () => {
  it('one trace id across the processes, retries as sibling CLIENT spans, sampling ratio honoured, nothing exported when off', async () => {
    await using redis = await startRedis();
    await using receiver = await startOtlpReceiver();
    await using quiet = await startOtlpReceiver();
    await using resetter = await startUpstream(true);
    await using plain = await startUpstream(false);
    await using dir = await tempDir();
    const tracing = { enabled: true, endpoint: receiver.url };
    const sessions = { store: 'redis', redis: { url: redis.url }, secrets: ['tracing-e2e-secret-00001'] };
    const appFile = await dir.write('app.yaml', { version: 1, sessions, telemetry: { tracing } });
    await using app1 = spawnTiergate(['demo-app', '--port', '0', '--instance', 'app-1', '-c', appFile]);
    await using app2 = spawnTiergate(['demo-app', '--port', '0', '--instance', 'app-2', '-c', appFile]);
    const apps = (await Promise.all([listeningUrl(app1), listeningUrl(app2)])).map(hostPort);

    const proxyFile = (name: string, section: object, tracingOf: object) =>
      dir.write(`${name}.yaml`, {
        version: 1,
        proxy: section,
        telemetry: { tracing: { ...tracingOf, resource_attributes: { 'test.proxy': name } } },
      });
    const [tracedFile, sampledFile, offFile] = await Promise.all([
      proxyFile('traced', proxySection(apps, resetter.address, apps[0]!, 1), tracing),
      proxyFile('sampled', proxySection(apps, resetter.address, apps[0]!, 2), { ...tracing, sampling_ratio: 0.5 }),
      // Tracing off, in front of a plain upstream (a traced app would start traces of its own).
      proxyFile('off', proxySection([plain.address], resetter.address, plain.address, 1), { enabled: false, endpoint: quiet.url }),
    ]);
    await using traced = spawnTiergate(['proxy', '-c', tracedFile]);
    await using sampled = spawnTiergate(['proxy', '-c', sampledFile]);
    await using off = spawnTiergate(['proxy', '-c', offFile]);
    const [tracedUrl, sampledUrl, offUrl] = await Promise.all([traced, sampled, off].map(listeningUrl));

    // traced: one request to the apps (it writes a session: Redis), then two GETs to the flaky pool
    // (round robin: one of them meets the resetter first and is retried on app 1).
    expect(await get(tracedUrl!, '/captcha')).toBe(200);
    for (let i = 0; i < 2; i++) expect(await get(tracedUrl!, '/cart', { host: 'flaky.test' })).toBe(200);
    // sampled: 40 requests, half kept on average (P(outside 6..34) < 1e-6 for a fair coin).
    const SAMPLED_REQUESTS = 40;
    for (let i = 0; i < SAMPLED_REQUESTS; i++) expect(await get(sampledUrl!, '/captcha')).toBe(200);
    // off: a client's made-up trace context is dropped (the client is not a trusted proxy).
    const made = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    for (let i = 0; i < 2; i++) expect(await get(offUrl!, '/cart', { host: 'flaky.test', traceparent: made })).toBe(200);

    // SIGTERM drains and flushes every process's queued spans before it exits.
    expect(await Promise.all([traced.stop(), sampled.stop(), off.stop()])).toEqual([0, 0, 0]);
    expect(await Promise.all([app1.stop(), app2.stop()])).toEqual([0, 0]);
    const spans = receiver.spans();
    const proxyServers = spans.filter((s) => s.serviceName === 'tiergate-proxy' && s.kind === 'SERVER');
    const traceOf = (s: CollectedSpan) => spans.filter((x) => x.traceId === s.traceId);

    // --- the span tree of the one request to the apps
    const tracedServers = proxyServers.filter((s) => proxyOf(s) === 'traced');
    expect(tracedServers).toHaveLength(3);
    const captcha = tracedServers.find((s) => s.attributes['tiergate.pool'] === 'apps');
    const tree = traceOf(captcha!);
    const attempt = tree.find((s) => s.serviceName === 'tiergate-proxy' && s.kind === 'CLIENT')!;
    const appServer = tree.find((s) => s.serviceName === 'tiergate-app' && s.kind === 'SERVER')!;
    const redisSpans = tree.filter((s) => s.serviceName === 'tiergate-app' && s.kind === 'CLIENT');
    expect(captcha).toMatchObject({ name: 'GET /', parentSpanId: undefined, status: { code: 'UNSET' } });
    expect(attempt).toMatchObject({
      name: 'GET',
      parentSpanId: captcha!.spanId,
      attributes: { 'url.full': expect.stringMatching(/\/captcha$/) },
    });
    expect(attempt.attributes['http.request.resend_count']).toBeUndefined();
    expect(appServer).toMatchObject({ name: 'GET /captcha', parentSpanId: attempt.spanId, attributes: { 'http.route': '/captcha' } });
    expect(apps).toContain(`${attempt.attributes['server.address']}:${attempt.attributes['server.port']}`);
    expect(redisSpans.length).toBeGreaterThan(0);
    for (const r of redisSpans) {
      expect(r.attributes).toMatchObject({ 'db.system.name': 'redis', 'server.port': redis.port });
      expect(ancestorsOf(r, tree).map((a) => a.spanId)).toEqual(
        expect.arrayContaining([appServer.spanId, attempt.spanId, captcha!.spanId]),
      );
    }
    expect(new Set(tree.map((s) => s.serviceName))).toEqual(new Set(['tiergate-proxy', 'tiergate-app']));

    // --- the retry: two CLIENT spans in one trace, the app's SERVER span under the second
    const flaky = tracedServers.filter((s) => s.attributes['tiergate.pool'] === 'flaky');
    expect(flaky).toHaveLength(2);
    const retried = flaky.map(traceOf).find((t) => t.filter((s) => s.kind === 'CLIENT' && s.serviceName === 'tiergate-proxy').length === 2);
    expect(retried, 'a flaky-pool trace with two attempts').toBeDefined();
    const [first, second] = retried!
      .filter((s) => s.kind === 'CLIENT' && s.serviceName === 'tiergate-proxy')
      .sort((a, b) => Number(a.attributes['http.request.resend_count'] ?? 0) - Number(b.attributes['http.request.resend_count'] ?? 0));
    const flakyServer = retried!.find((s) => s.serviceName === 'tiergate-proxy' && s.kind === 'SERVER')!;
    expect(first).toMatchObject({
      parentSpanId: flakyServer.spanId,
      status: { code: 'ERROR' },
      attributes: { 'error.type': 'TG_PROXY_UPSTREAM_RESET', 'server.port': Number(resetter.address.split(':')[1]) },
    });
    expect(second).toMatchObject({
      parentSpanId: flakyServer.spanId,
      attributes: { 'http.request.resend_count': 1, 'tiergate.retry_reason': 'TG_PROXY_UPSTREAM_RESET', 'http.response.status_code': 200 },
    });
    expect(retried!.find((s) => s.serviceName === 'tiergate-app' && s.kind === 'SERVER')?.parentSpanId).toBe(second!.spanId);

    // --- sampling 0.5 in the two-worker proxy: some but not all traces, and the apps follow the proxy's decision
    const sampledServers = proxyServers.filter((s) => proxyOf(s) === 'sampled');
    expect(sampledServers.length).toBeGreaterThanOrEqual(6);
    expect(sampledServers.length).toBeLessThanOrEqual(34);
    const keptTraces = new Set(proxyServers.map((s) => s.traceId));
    const appServers = spans.filter((s) => s.serviceName === 'tiergate-app' && s.kind === 'SERVER');
    // 1 + 2 traced requests and every kept sampled one reached an app SERVER span; no app span outside those traces.
    expect(appServers).toHaveLength(3 + sampledServers.length);
    for (const s of appServers) expect(keptTraces.has(s.traceId), `app span of trace ${s.traceId} has a proxy parent`).toBe(true);

    // --- every HTTP span of the stack (proxy SERVER and CLIENT, app SERVER) against the conventions' table
    // The app's SERVER spans are the standard SDK's HTTP instrumentation's (the demo app adds route and client address).
    const httpSpans = spans.filter((s) => s.scope === '@tiergate/proxy' || s.scope === '@opentelemetry/instrumentation-http');
    expect(httpSpans.filter((s) => s.scope === '@opentelemetry/instrumentation-http').map((s) => s.kind)).toEqual(
      appServers.map(() => 'SERVER'),
    );
    expect(httpSpans.length).toBeGreaterThanOrEqual(3 + 4 + 3);
    expect(httpSpans.flatMap((s) => httpConventionViolations(s))).toEqual([]);

    // --- tracing off: nothing exported, the made-up traceparent reached no upstream
    expect(quiet.requestCount()).toBe(0);
    expect(spans.some((s) => s.traceId === '0af7651916cd43dd8448eb211c80319c')).toBe(false);
    expect(proxyServers.filter((s) => proxyOf(s) === 'off')).toEqual([]);
    expect(plain.seen.map((r) => r.headers.traceparent)).toEqual([undefined, undefined]);
    expect(resetter.seen.some((r) => r.headers.traceparent === made)).toBe(false);
  });
});

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CollectedSpan, startOtlpReceiver, startRedis } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { ancestorsOf, descendantsOf, MODULE_PROBE, newTrace, spawnTiergate, TracedClient, tempDir } from './tracing-harness.ts';

// The app tier traced end to end through the REAL `tiergate demo-app` command: a real redis-server,
// a real OTLP receiver (protobuf decoded), and requests carrying a traceparent made up here as the
// proxy's upstream attempt spans would send it. Three app processes:
//   app-1 sampling_ratio 1, app-2 sampling_ratio 0 (follows a sampled parent, starts no trace),
//   app-3 tracing off (preloaded with a probe listing the modules it resolved).
// The spans of app-1 and app-2 come from the standard OpenTelemetry Node SDK the command starts before it imports the
// app (@opentelemetry/instrumentation-http's SERVER span, instrumentation-ioredis's CLIENT spans).

const sessions = (redisUrl: string) => ({ store: 'redis', redis: { url: redisUrl }, secrets: ['tracing-test-secret-0001'] });

/** Spans app-N made: their resource's service.instance.id is the one of the span made for `known`. */
const sameProcess = (spans: readonly CollectedSpan[], known: CollectedSpan) =>
  spans.filter((s) => s.resource['service.instance.id'] === known.resource['service.instance.id']);

describe('tracing: tiergate demo-app', () => {
  it('continues the caller’s trace across two app processes, with session and Redis spans under each request', async () => {
    await using redis = await startRedis();
    await using receiver = await startOtlpReceiver();
    await using quiet = await startOtlpReceiver();
    await using dir = await tempDir();
    const tracing = { enabled: true, endpoint: receiver.url };
    const file = (name: string, tel: object) => dir.write(name, { version: 1, sessions: sessions(redis.url), telemetry: tel });
    const [sampled, unsampled, off] = await Promise.all([
      file('ratio-1.yaml', { tracing }),
      file('ratio-0.yaml', { tracing: { ...tracing, sampling_ratio: 0 } }),
      file('off.yaml', { tracing: { enabled: false, endpoint: quiet.url } }),
    ]);
    const probeOut = join(dir.path, 'modules.json');
    const args = (config: string, instance: string) => ['demo-app', '--port', '0', '--instance', instance, '-c', config, '--demo'];
    await using app1 = spawnTiergate(args(sampled, 'app-1'));
    await using app2 = spawnTiergate(args(unsampled, 'app-2'));
    await using app3 = spawnTiergate(args(off, 'app-3'), { nodeArgs: ['--import', MODULE_PROBE], env: { TG_MODULE_PROBE_OUT: probeOut } });
    const listening = /listening on (\S+)/;
    const [url1, url2, url3] = (await Promise.all([app1, app2, app3].map((a) => a.waitForStdout(listening)))).map((m) => m[1]!);

    // One user's journey, one trace, spread over both traced processes (the way round robin would).
    const trace = newTrace();
    const [p1, p2, p3, p4, p5] = [1, 2, 3, 4, 5].map(() => trace.traceparent());
    const browser = new TracedClient();
    const captcha = await browser.call(`${url1}/captcha`, { traceparent: p1!.header });
    const login = await browser.call(`${url2}/login`, {
      traceparent: p2!.header,
      json: { user: 'alice', password: 'wonderland', captcha: captcha.body?.code },
    });
    const cart = await browser.call(`${url1}/cart`, { traceparent: p3!.header });
    expect([captcha.status, login.status, cart.status, cart.body?.user]).toEqual([200, 200, 200, 'alice']);
    // No traceparent: app-1 starts a trace of its own (ratio 1), app-2 none (ratio 0).
    expect((await new TracedClient().call(`${url1}/cart`)).status).toBe(200);
    expect((await new TracedClient().call(`${url2}/cart`)).status).toBe(200);
    // The liveness route is not traced (the proxy probes it every few seconds): `servers` below has no span for it.
    expect((await fetch(`${url1}/healthz`, { headers: { traceparent: trace.traceparent().header } })).status).toBe(200);
    // Tracing off: served, nothing exported.
    expect((await browser.call(`${url3}/cart`, { traceparent: p5!.header })).body?.user).toBe('alice');
    // Redis gone: a 503, an ERROR span, and a log line that names the trace.
    await redis.stop();
    expect((await browser.call(`${url1}/cart`, { traceparent: p4!.header })).status).toBe(503);

    // SIGTERM flushes what is queued (the batch would otherwise wait 5 s): every span is in by exit.
    expect(await Promise.all([app1.stop(), app2.stop(), app3.stop()])).toEqual([0, 0, 0]);
    const spans = receiver.spans();
    const servers = spans.filter((s) => s.kind === 'SERVER');
    const serverFor = (parentSpanId: string) => {
      const found = servers.filter((s) => s.parentSpanId === parentSpanId);
      expect(found, `one SERVER span with parent ${parentSpanId}`).toHaveLength(1);
      return found[0]!;
    };
    const [s1, s2, s3, s4] = [p1!, p2!, p3!, p4!].map((p) => serverFor(p.parentSpanId));
    // Made by the standard SDK's HTTP instrumentation, which the command starts before it imports the app.
    for (const s of [s1!, s2!, s3!, s4!])
      expect(s).toMatchObject({ traceId: trace.traceId, serviceName: 'tiergate-app', scope: '@opentelemetry/instrumentation-http' });
    expect(s1!.resource['service.instance.id']).not.toBe(s2!.resource['service.instance.id']);
    expect(s1!.resource['service.instance.id']).toBe(s3!.resource['service.instance.id']);
    expect(s1).toMatchObject({
      name: 'GET /captcha',
      status: { code: 'UNSET' },
      attributes: {
        'http.request.method': 'GET',
        'http.route': '/captcha',
        'server.address': '127.0.0.1',
        'network.protocol.version': '1.1',
        'url.path': '/captcha',
        'url.scheme': 'http',
        'http.response.status_code': 200,
        'client.address': '127.0.0.1',
      },
    });
    expect(s2).toMatchObject({ name: 'POST /login', attributes: { 'http.route': '/login', 'http.response.status_code': 200 } });
    expect(s4).toMatchObject({ status: { code: 'ERROR' }, attributes: { 'http.response.status_code': 503, 'error.type': '503' } });

    // Session spans are children of the SERVER span; every Redis command is a CLIENT span below one of them.
    const underLogin = descendantsOf(s2!, spans);
    expect(underLogin.filter((s) => s.parentSpanId === s2!.spanId).map((s) => s.name)).toEqual([
      'session load',
      'session take',
      'session save',
    ]);
    expect(underLogin.find((s) => s.name === 'session take')?.attributes).toMatchObject({ 'tiergate.session.taken': true });
    expect(underLogin.find((s) => s.name === 'session load')?.attributes).toMatchObject({ 'tiergate.session.hit': true });
    expect(underLogin.find((s) => s.name === 'session save')?.attributes).toMatchObject({ 'tiergate.session.write': 'regenerate' });
    const redisOfLogin = underLogin.filter((s) => s.kind === 'CLIENT');
    expect(redisOfLogin.map((s) => s.name)).toEqual(expect.arrayContaining(['hgetall', 'del']));
    const redisSpans = spans.filter((s) => s.kind === 'CLIENT');
    expect(redisSpans.length).toBeGreaterThanOrEqual(5);
    for (const span of redisSpans) {
      expect(span.attributes).toMatchObject({ 'db.system.name': 'redis', 'server.port': redis.port });
      const [session, server] = ancestorsOf(span, spans);
      expect([session?.kind, session?.scope, server?.kind]).toEqual(['INTERNAL', '@tiergate/session', 'SERVER']);
    }
    const failedLoad = descendantsOf(s4!, spans).find((s) => s.name === 'session load');
    expect(failedLoad).toMatchObject({ status: { code: 'ERROR' }, attributes: { 'error.type': 'TG_SESSION_STORE_UNAVAILABLE' } });
    const logLine = app1
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'request failed');
    expect(logLine).toMatchObject({ trace_id: trace.traceId, span_id: s4!.spanId, trace_flags: '01' });

    // Sampling: app-2 (ratio 0) followed the sampled parent (s2) but started no trace of its own;
    // app-1 (ratio 1) did (the control).
    expect(sameProcess(servers, s2!).map((s) => s.traceId)).toEqual([trace.traceId]);
    const roots = servers.filter((s) => s.parentSpanId === undefined);
    expect(roots).toHaveLength(1);
    expect(roots[0]!.resource['service.instance.id']).toBe(s1!.resource['service.instance.id']);
    expect(servers).toHaveLength(5);

    // Tracing off: nothing exported, and no SDK, instrumentation, exporter or loader hook was even resolved (the probe
    // saw ioredis, so it works): only the API, and core + semantic conventions for the route (server-span.ts).
    expect(quiet.requestCount()).toBe(0);
    expect(spans.some((s) => s.parentSpanId === p5!.parentSpanId)).toBe(false);
    const modules = (JSON.parse(await readFile(probeOut, 'utf8')) as string[])
      .map((url) => /node_modules\/(@opentelemetry\/[^/]+|import-in-the-middle|ioredis)\//.exec(url)?.[1])
      .filter((m) => m !== undefined);
    expect([...new Set(modules)].sort()).toEqual([
      '@opentelemetry/api',
      '@opentelemetry/core',
      '@opentelemetry/semantic-conventions',
      'ioredis',
    ]);
  });
});

import type { IncomingMessage } from 'node:http';
import { validateConfig } from '@tiergate/config';
import { startTelemetry, type TelemetryHandle } from '@tiergate/telemetry';
import { type CollectedSpan, httpConventionViolations, type OtlpReceiver, startOtlpReceiver } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { fetchText, named, server, startTestProxy, startUpstream } from './helpers.ts';

/** The real SDK of @tiergate/telemetry, exporting OTLP/HTTP to `receiver` (flushed by shutdown()). */
async function startTracing(receiver: OtlpReceiver, tracing: Record<string, unknown> = {}): Promise<TelemetryHandle> {
  const cfg = validateConfig({ version: 1, telemetry: { tracing: { enabled: true, endpoint: receiver.url, ...tracing } } });
  return startTelemetry(cfg.telemetry, { tier: 'proxy', version: 'test', exportTimeoutMs: 5_000 });
}

const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_PARENT = 'b7ad6b7169203331';
const incoming = { traceparent: `00-${CLIENT_TRACE}-${CLIENT_PARENT}-01`, tracestate: 'vendor=client' };

/** SERVER spans are named `{method} {http.route}` (or `{method}`), CLIENT spans `{method}`: the kind tells them apart. */
const SERVER = 'SERVER';
const CLIENT = 'CLIENT';
type Kind = typeof SERVER | typeof CLIENT;
const byName = (spans: readonly CollectedSpan[], kind: Kind, name: string) => spans.filter((s) => s.kind === kind && s.name === name);
const one = (spans: readonly CollectedSpan[], kind: Kind, name: string): CollectedSpan => {
  const found = byName(spans, kind, name);
  if (found.length !== 1) {
    throw new Error(`expected one ${kind} '${name}' span, got ${found.length} of ${spans.map((s) => `${s.kind} ${s.name}`).join(', ')}`);
  }
  return found[0]!;
};
/** The attempt's ordinal: the conventions' resend count is absent on the first try. */
const attemptOf = (s: CollectedSpan): number => Number(s.attributes['http.request.resend_count'] ?? 0) + 1;
const header = (req: IncomingMessage | undefined, name: string) => req?.headers[name];

describe('proxy spans (in-process, real SDK and OTLP receiver)', () => {
  it('one request: SERVER span → CLIENT span, names and attributes per the HTTP conventions, traceparent upstream is the CLIENT span', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using app = await startUpstream(named('app'));
    await using p = await startTestProxy({
      pools: { web: { algorithm: 'least_conn', servers: [server(app)] } },
      routes: [{ path: '/api', pool: 'web' }],
    });
    const r = await fetchText(`${p.url}/api/items?token=secret`, { headers: { host: 'shop.example:8443', 'user-agent': 'tg-test/1' } });
    expect(r.status).toBe(200);
    await telemetry.shutdown();

    const spans = receiver.spans();
    expect(spans).toHaveLength(2);
    const srv = one(spans, SERVER, 'GET /api');
    const cli = one(spans, CLIENT, 'GET');
    expect(srv).toMatchObject({ kind: 'SERVER', parentSpanId: undefined, scope: '@tiergate/proxy', serviceName: 'tiergate-proxy' });
    expect(srv.status.code).toBe('UNSET');
    expect(srv.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/api/items',
      'url.scheme': 'http',
      'http.route': '/api',
      'tiergate.pool': 'web',
      'client.address': '127.0.0.1',
      // The name the client addressed (Host), not the socket's local address.
      'server.address': 'shop.example',
      'server.port': 8443,
      'user_agent.original': 'tg-test/1',
      'network.protocol.version': '1.1',
      'http.response.status_code': 200,
    });
    expect(JSON.stringify(srv.attributes)).not.toContain('secret');
    expect(JSON.stringify(cli.attributes)).not.toContain('secret');
    expect(cli).toMatchObject({ kind: 'CLIENT', traceId: srv.traceId, parentSpanId: srv.spanId });
    expect(cli.attributes).toEqual({
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': app.port,
      'url.full': `http://127.0.0.1:${app.port}/api/items`,
      'network.protocol.version': '1.1',
      'tiergate.pool': 'web',
      'tiergate.balancer.algorithm': 'least_conn',
      'http.response.status_code': 200,
    });
    expect(header(app.seen[0], 'traceparent')).toBe(`00-${srv.traceId}-${cli.spanId}-01`);
    expect(header(app.seen[0], 'tracestate')).toBeUndefined();
  });

  it('a retry after a reset shows as two CLIENT spans: attempt 1 failed with its code, attempt 2 with the retry reason', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using bad = await startUpstream((req) => req.socket.destroy());
    await using good = await startUpstream(named('good'));
    await using p = await startTestProxy({
      pools: { app: { algorithm: 'round_robin', servers: [server(bad, { max_fails: 0 }), server(good)] } },
    });
    // Round robin: of two requests, one goes to `bad` first and is retried on `good`.
    for (let i = 0; i < 2; i++) expect((await fetchText(`${p.url}/x`)).status).toBe(200);
    await telemetry.shutdown();

    const spans = receiver.spans();
    const attempts = byName(spans, CLIENT, 'GET');
    const retried = attempts.find((s) => attemptOf(s) === 2);
    expect(retried, 'a second attempt').toBeDefined();
    const trace = spans.filter((s) => s.traceId === retried!.traceId);
    const srv = one(trace, SERVER, 'GET /');
    const [first, second] = byName(trace, CLIENT, 'GET').sort((a, b) => attemptOf(a) - attemptOf(b));
    expect(first!.parentSpanId).toBe(srv.spanId);
    expect(second!.parentSpanId).toBe(srv.spanId);
    expect(first!.status.code).toBe('ERROR');
    expect(first!.attributes).toMatchObject({ 'server.port': bad.port, 'error.type': 'TG_PROXY_UPSTREAM_RESET' });
    expect(first!.attributes['http.request.resend_count']).toBeUndefined();
    expect(first!.attributes['http.response.status_code']).toBeUndefined();
    expect(first!.attributes['tiergate.retry_reason']).toBeUndefined();
    expect(second!.status.code).toBe('UNSET');
    expect(second!.attributes).toMatchObject({
      'http.request.resend_count': 1,
      'server.port': good.port,
      'tiergate.retry_reason': 'TG_PROXY_UPSTREAM_RESET',
      'http.response.status_code': 200,
    });
    expect(srv.status.code).toBe('UNSET');
    expect(srv.attributes['http.response.status_code']).toBe(200);
    // The server that answered saw the second attempt's span as its parent.
    const parents = good.seen.map((req) => header(req, 'traceparent'));
    expect(parents).toContain(`00-${srv.traceId}-${second!.spanId}-01`);
  });

  it('a retry after a 502 (retries.on http_502): attempt 1 TG_PROXY_UPSTREAM_STATUS, attempt 2 retry_reason http_502', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using bad = await startUpstream((_req, res) => res.writeHead(502).end('bad gateway'));
    await using good = await startUpstream(named('good'));
    await using p = await startTestProxy({
      pools: {
        app: { algorithm: 'round_robin', servers: [server(bad, { max_fails: 0 }), server(good)], retries: { on: ['error', 'http_502'] } },
      },
    });
    for (let i = 0; i < 2; i++) expect((await fetchText(`${p.url}/x`)).status).toBe(200);
    await telemetry.shutdown();

    const attempts = byName(receiver.spans(), CLIENT, 'GET');
    const second = attempts.find((s) => attemptOf(s) === 2)!;
    const first = attempts.find((s) => s.traceId === second.traceId && attemptOf(s) === 1)!;
    expect(first.status.code).toBe('ERROR');
    expect(first.attributes).toMatchObject({ 'http.response.status_code': 502, 'error.type': 'TG_PROXY_UPSTREAM_STATUS' });
    expect(second.attributes).toMatchObject({ 'tiergate.retry_reason': 'http_502', 'http.response.status_code': 200 });
  });

  it('a request that fails everywhere: SERVER span ERROR with the TG code; a 404 of the proxy is not an error', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using bad = await startUpstream((req) => req.socket.destroy());
    await using p = await startTestProxy({
      pools: { app: { servers: [server(bad, { max_fails: 0 })] } },
      routes: [{ path: '/app', pool: 'app' }],
    });
    expect((await fetchText(`${p.url}/app`)).status).toBe(502);
    expect((await fetchText(`${p.url}/elsewhere`)).status).toBe(404);
    await telemetry.shutdown();

    const failed = one(receiver.spans(), SERVER, 'GET /app');
    const missing = one(receiver.spans(), SERVER, 'GET'); // no route matched: `{method}` alone
    expect(failed!.status.code).toBe('ERROR');
    expect(failed!.attributes).toMatchObject({ 'http.response.status_code': 502, 'error.type': 'TG_PROXY_UPSTREAM_RESET' });
    expect(missing!.status.code).toBe('UNSET');
    expect(missing!.attributes['http.response.status_code']).toBe(404);
    expect(missing!.attributes['http.route']).toBeUndefined();
    const attempt = one(receiver.spans(), CLIENT, 'GET');
    expect(attempt.attributes['error.type']).toBe('TG_PROXY_UPSTREAM_RESET');
  });
});

describe('incoming trace context', () => {
  it('from an untrusted client: ignored (new root trace) and not forwarded; the app sees only the proxy’s', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using app = await startUpstream(named('app'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(app)] } } });
    expect((await fetchText(`${p.url}/`, { headers: incoming })).status).toBe(200);
    await telemetry.shutdown();

    const srv = one(receiver.spans(), SERVER, 'GET /');
    const cli = one(receiver.spans(), CLIENT, 'GET');
    expect(srv.traceId).not.toBe(CLIENT_TRACE);
    expect(srv.parentSpanId).toBeUndefined();
    expect(header(app.seen[0], 'traceparent')).toBe(`00-${srv.traceId}-${cli.spanId}-01`);
    expect(header(app.seen[0], 'tracestate')).toBeUndefined();
  });

  it('from a trusted proxy (trusted_proxies): continued, tracestate carried on', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using app = await startUpstream(named('app'));
    await using p = await startTestProxy({ trusted_proxies: ['127.0.0.1/32'], pools: { app: { servers: [server(app)] } } });
    expect((await fetchText(`${p.url}/`, { headers: incoming })).status).toBe(200);
    await telemetry.shutdown();

    const srv = one(receiver.spans(), SERVER, 'GET /');
    const cli = one(receiver.spans(), CLIENT, 'GET');
    expect(srv).toMatchObject({ traceId: CLIENT_TRACE, parentSpanId: CLIENT_PARENT });
    expect(header(app.seen[0], 'traceparent')).toBe(`00-${CLIENT_TRACE}-${cli.spanId}-01`);
    expect(header(app.seen[0], 'tracestate')).toBe('vendor=client');
  });

  it('from anyone with trust_incoming: continued, even when sampling would drop a new trace', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver, { sampling_ratio: 0 });
    await using app = await startUpstream(named('app'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(app)] } } }, undefined, { trustIncomingTraceContext: true });
    expect((await fetchText(`${p.url}/`, { headers: incoming })).status).toBe(200);
    expect((await fetchText(`${p.url}/`)).status).toBe(200); // a new trace: ratio 0 keeps none
    await telemetry.shutdown();

    expect(receiver.spans().map((s) => [s.name, s.traceId])).toEqual([
      ['GET', CLIENT_TRACE],
      ['GET /', CLIENT_TRACE],
    ]);
    // The unsampled new trace still goes upstream, marked unsampled, so the app does not start its own.
    const unsampled = String(header(app.seen[1], 'traceparent'));
    expect(unsampled).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(unsampled).not.toContain(CLIENT_TRACE);
  });
});

describe('edge cases', () => {
  it('a non-standard method is `_OTHER` in spans named `HTTP /` and `HTTP`; a trusted unsampled parent stays unsampled upstream', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using app = await startUpstream(named('app'));
    await using p = await startTestProxy({ trusted_proxies: ['127.0.0.1/32'], pools: { app: { servers: [server(app)] } } });
    expect((await fetchText(`${p.url}/cache`, { method: 'PURGE' })).status).toBe(200);
    const unsampled = `00-${CLIENT_TRACE}-${CLIENT_PARENT}-00`;
    expect((await fetchText(`${p.url}/`, { headers: { traceparent: unsampled } })).status).toBe(200);
    await telemetry.shutdown();

    const spans = receiver.spans();
    expect(spans.map((s) => `${s.kind} ${s.name}`).sort()).toEqual(['CLIENT HTTP', 'SERVER HTTP /']);
    const other = { 'http.request.method': '_OTHER', 'http.request.method_original': 'PURGE' };
    expect(one(spans, SERVER, 'HTTP /').attributes).toMatchObject(other);
    expect(one(spans, CLIENT, 'HTTP').attributes).toMatchObject(other);
    // The parent said "not sampled": nothing recorded, and the app is told the same about the same trace.
    expect(String(header(app.seen[1], 'traceparent'))).toMatch(new RegExp(`^00-${CLIENT_TRACE}-[0-9a-f]{16}-00$`));
  });
});

describe('the HTTP semantic conventions, as a table (testkit http-conventions.ts)', () => {
  it('every span of a routed 200, a 404, a retry after a reset and a non-standard method has what the table requires', async () => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using bad = await startUpstream((req) => req.socket.destroy());
    await using good = await startUpstream(named('good'));
    await using p = await startTestProxy({
      pools: {
        app: { algorithm: 'round_robin', servers: [server(bad, { max_fails: 0 }), server(good)] },
        // A PURGE is not idempotent: never retried, so it gets a pool without the resetting server.
        purge: { servers: [server(good)] },
      },
      routes: [
        { path: '/app', pool: 'app' },
        { path: '/purge', pool: 'purge' },
      ],
    });
    const headers = { 'user-agent': 'tg-conventions/1' };
    for (let i = 0; i < 2; i++) expect((await fetchText(`${p.url}/app/x?q=1`, { headers })).status).toBe(200);
    expect((await fetchText(`${p.url}/elsewhere`, { headers })).status).toBe(404);
    expect((await fetchText(`${p.url}/purge/cache`, { method: 'PURGE', headers })).status).toBe(200);
    await telemetry.shutdown();

    const spans = receiver.spans();
    expect(spans.filter((s) => s.kind === 'SERVER')).toHaveLength(4);
    expect(spans.some((s) => s.attributes['http.request.resend_count'] === 1)).toBe(true); // the retry is among them
    expect(spans.flatMap((s) => httpConventionViolations(s))).toEqual([]);
  });
});

describe('server.address and server.port from the Host header', () => {
  it.each([
    ['plain.example', 'plain.example', 80],
    ['[2001:db8::1]:8080', '2001:db8::1', 8080],
    ['[2001:db8::1]', '2001:db8::1', 80],
    ['10.0.0.7:81', '10.0.0.7', 81],
  ])('Host %s → %s, %i', async (host, address, port) => {
    await using receiver = await startOtlpReceiver();
    await using telemetry = await startTracing(receiver);
    await using app = await startUpstream(named('app'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(app)] } } });
    expect((await fetchText(`${p.url}/`, { headers: { host } })).status).toBe(200);
    await telemetry.shutdown();
    expect(one(receiver.spans(), SERVER, 'GET /').attributes).toMatchObject({ 'server.address': address, 'server.port': port });
  });
});

describe('tracing off (no SDK registered)', () => {
  it('makes no spans and forwards trace context only from trusted senders', async () => {
    await using receiver = await startOtlpReceiver();
    await using app = await startUpstream(named('app'));
    await using untrusted = await startTestProxy({ pools: { app: { servers: [server(app)] } } });
    await using trusted = await startTestProxy({ trusted_proxies: ['127.0.0.1/32'], pools: { app: { servers: [server(app)] } } });
    await using trustAll = await startTestProxy({ pools: { app: { servers: [server(app)] } } }, undefined, {
      trustIncomingTraceContext: true,
    });
    for (const p of [untrusted, trusted, trustAll]) expect((await fetchText(`${p.url}/`, { headers: incoming })).status).toBe(200);

    expect(app.seen.map((req) => [header(req, 'traceparent'), header(req, 'tracestate')])).toEqual([
      [undefined, undefined],
      [incoming.traceparent, incoming.tracestate],
      [incoming.traceparent, incoming.tracestate],
    ]);
    // Nothing was registered, so nothing could export: telemetry with tracing off starts no SDK.
    const off = await startTelemetry(validateConfig({ version: 1, telemetry: { tracing: { endpoint: receiver.url } } }).telemetry, {
      tier: 'proxy',
      version: 'test',
    });
    expect(off.enabled).toBe(false);
    expect((await fetchText(`${untrusted.url}/`)).status).toBe(200);
    await off.shutdown();
    expect(receiver.requestCount()).toBe(0);
  });
});

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type CollectedSpan, httpConventionViolations, startOtlpReceiver, startRedis } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { Browser } from './helpers.ts';

// The demo app on the standard OpenTelemetry Node SDK (test/child/traced-demo-app.ts), with a real redis-server and a
// real OTLP receiver: a request carrying the traceparent the proxy's upstream attempt (its CLIENT span) would send
// continues that trace in the HTTP instrumentation's SERVER span, with the app's route and trusted client address,
// and the session's Redis commands are ioredis CLIENT spans below it, all with the one trace id.

const TRACE_ID = '5e0c63257de34c92bf9efcd03927272e';
const PROXY_ATTEMPT = 'a3ce929d0e0e4736';
const GUARD_MS = 25_000; // against a hung child, not an assertion

function ancestorsOf(span: CollectedSpan, spans: readonly CollectedSpan[]): CollectedSpan[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const chain: CollectedSpan[] = [];
  for (let p = span.parentSpanId && byId.get(span.parentSpanId); p; p = p.parentSpanId && byId.get(p.parentSpanId)) chain.push(p);
  return chain;
}

async function startTracedApp(env: Record<string, string>) {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'child/traced-demo-app.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const guard = setTimeout(() => child.kill('SIGKILL'), GUARD_MS);
  const exited = once(child, 'exit').then(([code]) => {
    clearTimeout(guard);
    return code as number | null;
  });
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([once(lines, 'line').then(([l]) => l as string), exited.then(() => undefined)]);
  if (first === undefined) throw new Error(`traced-demo-app ended before it listened:\n${stderr}`);
  return {
    url: first.replace(/^listening /, ''),
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
    [Symbol.asyncDispose]: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('tracing: the demo app on the standard Node SDK', () => {
  it('joins the proxy’s trace: SERVER span under the proxy’s attempt, ioredis spans under it, one trace id', async () => {
    await using redis = await startRedis();
    await using receiver = await startOtlpReceiver();
    await using app = await startTracedApp({ TG_OTLP_URL: receiver.url, TG_REDIS_URL: redis.url });
    const browser = new Browser();
    // As the proxy forwards it: its traceparent, X-Real-IP with the client, and an X-Forwarded-For whose first
    // entry the client wrote itself.
    const headers = {
      traceparent: `00-${TRACE_ID}-${PROXY_ATTEMPT}-01`,
      'x-real-ip': '203.0.113.7',
      'x-forwarded-for': '198.51.100.1, 203.0.113.7',
      'user-agent': 'tiergate-test',
    };
    const captchaReply = await browser.call(`${app.url}/captcha`, { headers });
    expect(captchaReply.status).toBe(200);
    const code = String(captchaReply.body?.code);
    expect(
      (await browser.call(`${app.url}/no-such-page`, { headers: { ...headers, traceparent: `00-${TRACE_ID}-${'b'.repeat(16)}-01` } }))
        .status,
    ).toBe(404);
    expect(await app.stop()).toBe(0); // SIGTERM flushed the batch

    const spans = receiver.spans();
    const servers = spans.filter((s) => s.kind === 'SERVER');
    const captcha = servers.find((s) => s.parentSpanId === PROXY_ATTEMPT);
    expect(captcha).toMatchObject({
      traceId: TRACE_ID,
      name: 'GET /captcha',
      scope: '@opentelemetry/instrumentation-http',
      serviceName: 'tiergate-app',
      attributes: {
        'http.route': '/captcha',
        'http.response.status_code': 200,
        'client.address': '203.0.113.7',
        'url.path': '/captcha',
        'user_agent.original': 'tiergate-test',
      },
    });
    // No route matched: the span keeps the bare method and has no http.route.
    const notFound = servers.find((s) => s.parentSpanId === 'b'.repeat(16));
    expect(notFound).toMatchObject({ traceId: TRACE_ID, name: 'GET', attributes: { 'http.response.status_code': 404 } });
    expect(notFound!.attributes['http.route']).toBeUndefined();
    expect(servers.flatMap((s) => httpConventionViolations(s))).toEqual([]);

    const redisSpans = spans.filter((s) => s.kind === 'CLIENT' && s.scope === '@opentelemetry/instrumentation-ioredis');
    const serverOf = (r: CollectedSpan) => ancestorsOf(r, spans).find((a) => a.kind === 'SERVER')?.spanId;
    // Every command under a request's SERVER span (requireParentSpan: the store's own checks make none); the captcha's
    // session was written.
    expect(new Set(redisSpans.map(serverOf))).toEqual(new Set([captcha!.spanId, notFound!.spanId]));
    expect(redisSpans.filter((r) => serverOf(r) === captcha!.spanId).length).toBeGreaterThan(0);
    for (const r of redisSpans) {
      expect(r).toMatchObject({ traceId: TRACE_ID, attributes: { 'db.system.name': 'redis', 'server.port': redis.port } });
      // The command and a placeholder per argument: the arguments are the session's id and data.
      expect(r.attributes['db.query.text']).toMatch(/^\w+( \?)*$/);
    }
    // The captcha's answer went to Redis (the session save's script) but into no span.
    expect(JSON.stringify(spans)).not.toContain(code);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([TRACE_ID]));
  });
});

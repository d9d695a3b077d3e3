import { startOtlpReceiver, startRedis } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { lastJson, runChild, tracingOn } from './spawn-child.ts';

describe('app SDK (startAppTelemetry): ioredis instrumentation', () => {
  it('records a CLIENT span per Redis command under the active span, none outside a span', async () => {
    await using redis = await startRedis();
    await using receiver = await startOtlpReceiver();
    const { traceId } = lastJson<{ traceId: string }>(
      await runChild('redis-child.ts', { TG_TELEMETRY: tracingOn(receiver.url), TG_REDIS_URL: redis.url }),
    );
    const spans = receiver.spans();
    const server = spans.find((s) => s.name === 'GET /session');
    const commands = spans.filter((s) => s.kind === 'CLIENT');
    expect(commands.map((s) => s.name)).toEqual(['set', 'get']);
    for (const span of commands) {
      expect(span).toMatchObject({ traceId, parentSpanId: server?.spanId, serviceName: 'tiergate-app' });
      expect(span.attributes).toMatchObject({ 'db.system.name': 'redis', 'server.port': redis.port });
    }
    expect(spans).toHaveLength(3); // the GET outside any span made none (requireParentSpan)
  });
});

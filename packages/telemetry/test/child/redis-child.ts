// Plays the app's session calls: the app SDK (startAppTelemetry) first, then ioredis (imported afterwards, as
// the CLI must), SET and GET under a SERVER span against a real redis-server at TG_REDIS_URL.
import { SpanKind, trace } from '@opentelemetry/api';
import { startAppTelemetry } from '../../src/index.ts';
import { settingsFromEnv } from './settings.ts';

const telemetry = await startAppTelemetry(settingsFromEnv(), { version: '9.9.9-test' });
const { Redis } = await import('ioredis');
const redis = new Redis(process.env.TG_REDIS_URL ?? '', { lazyConnect: true });
await redis.connect();
await redis.get('outside-any-span'); // requireParentSpan: no span for this one
const traceId = await trace.getTracer('tiergate-test-app').startActiveSpan('GET /session', { kind: SpanKind.SERVER }, async (span) => {
  await redis.set('sess:1', 'value', 'EX', 60);
  await redis.get('sess:1');
  span.end();
  return span.spanContext().traceId;
});
redis.disconnect();
await telemetry.shutdown();
process.stdout.write(`${JSON.stringify({ traceId })}\n`);

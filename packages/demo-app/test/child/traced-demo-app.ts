// The demo app as `tiergate demo-app` runs it when tracing is on, in a child process: the standard OpenTelemetry
// Node SDK first (startAppTelemetry: node:http and ioredis instrumentations), the app and its Redis session store
// imported after it, as the instrumentations patch only what loads later. Exports to TG_OTLP_URL; sessions in the
// Redis at TG_REDIS_URL; trusts X-Real-IP from 127.0.0.1. Prints "listening <url>"; SIGTERM flushes and exits.
import { validateConfig } from '@tiergate/config';
import { startAppTelemetry } from '@tiergate/telemetry';

const { telemetry: settings } = validateConfig({
  version: 1,
  telemetry: { tracing: { enabled: true, endpoint: process.env.TG_OTLP_URL } },
});
const telemetry = await startAppTelemetry(settings, {
  version: '0.0.0-test',
  onDiagnostic: (level, message) => process.stderr.write(`otel ${level}: ${message}\n`),
});
const [{ startDemoApp }, { RedisSessionStore }] = await Promise.all([import('../../src/index.ts'), import('@tiergate/session')]);
const store = new RedisSessionStore({ mode: 'standalone', url: process.env.TG_REDIS_URL ?? '' });
await store.ready();
const app = await startDemoApp({ instanceId: 'traced', store, demo: true, trustedProxies: ['127.0.0.1'] });
process.stdout.write(`listening ${app.url}\n`);
process.once('SIGTERM', async () => {
  await app.close();
  await store.close();
  await telemetry.shutdown();
  process.exit(0);
});

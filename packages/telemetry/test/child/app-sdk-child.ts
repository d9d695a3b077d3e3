// Plays an app server on the standard Node SDK (startAppTelemetry): the SDK first, node:http imported after it (as
// an app must), one request to /work carrying TG_TRACEPARENT and one to /healthz (ignored), both sent with fetch
// (undici: not the instrumented node:http client, so the made-up traceparent goes out as it is). Then it flushes and
// prints { enabled, statuses }.
import { startAppTelemetry } from '../../src/index.ts';
import { settingsFromEnv } from './settings.ts';

const telemetry = await startAppTelemetry(settingsFromEnv(), {
  version: '9.9.9-test',
  ignoreIncomingRequest: (req) => req.url === '/healthz',
  onDiagnostic: (level, message) => process.stderr.write(`otel ${level}: ${message}\n`),
});
const { createServer } = await import('node:http');
const server = createServer((_req, res) => res.end('ok'));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
const statuses: number[] = [];
for (const path of ['/work', '/healthz']) {
  const res = await fetch(`${base}${path}`, { headers: { traceparent: process.env.TG_TRACEPARENT ?? '' } });
  await res.text();
  statuses.push(res.status);
}
server.close();
await telemetry.shutdown();
process.stdout.write(`${JSON.stringify({ enabled: telemetry.enabled, statuses })}\n`);

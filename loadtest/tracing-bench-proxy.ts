// Child process of loadtest/tracing-bench.ts: one proxy built from its argument (a whole tiergate.yaml as
// JSON), with the telemetry SDK started first when its tracing is enabled, as `tiergate proxy` does.
// Prints `port <n>` once listening; SIGTERM closes the proxy and flushes spans, then exits.
import { validateConfig } from '@tiergate/config';
import { startTelemetry } from '@tiergate/telemetry';

const config = validateConfig(JSON.parse(process.argv[2] ?? '{}'));
const telemetry = await startTelemetry(config.telemetry, {
  tier: 'proxy',
  version: 'bench',
  onDiagnostic: (level, message) => console.error(`telemetry ${level}: ${message}`),
  // A variant ending in `i` (tracing-bench.ts) exports inline, from the serving thread.
  exportThread: process.argv[3] !== 'inline',
});
const { startProxy } = await import('@tiergate/proxy');
const proxy = await startProxy(config.proxy!, { trustIncomingTraceContext: config.telemetry.tracing.trust_incoming });
console.log(`port ${proxy.addresses()[0]!.port}`);
process.once('SIGTERM', async () => {
  await proxy.close();
  await telemetry.shutdown();
  process.exit(0);
});

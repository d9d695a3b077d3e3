import { startOtlpReceiver } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { lastJson, runChild, tracingOn } from './spawn-child.ts';

// startAppTelemetry: the standard @opentelemetry/sdk-node in a real child process, a real OTLP receiver, and which of
// tiergate.yaml (TG_TELEMETRY, through the real schema) and the OTEL_* environment wins (node-sdk.ts, docs/telemetry.md).

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT}-01`;

interface Report {
  enabled: boolean;
  statuses: number[];
}

/** Runs the child with exactly these OTEL_* variables (none inherited from the test runner's environment). */
function runApp(telemetry: string, otel: Record<string, string> = {}) {
  const env: Record<string, string> = { TG_TELEMETRY: telemetry, TG_TRACEPARENT: TRACEPARENT, ...otel };
  for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_') && !(name in otel)) env[name] = '';
  return runChild('app-sdk-child.ts', env).then((r) => lastJson<Report>(r));
}

describe('startAppTelemetry (the standard Node SDK for app servers)', () => {
  it('continues the incoming trace in an http SERVER span; the file’s endpoint and resource attributes win over OTEL_*', async () => {
    await using receiver = await startOtlpReceiver();
    await using quiet = await startOtlpReceiver();
    const telemetry = tracingOn(receiver.url, { resource_attributes: { 'deployment.environment.name': 'file' } });
    const report = await runApp(telemetry, {
      OTEL_EXPORTER_OTLP_ENDPOINT: quiet.url,
      OTEL_SERVICE_NAME: 'shop',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=env,team=web',
    });
    expect(report).toEqual({ enabled: true, statuses: [200, 200] });
    // One span: /healthz is ignored; the SDK's batch was flushed by shutdown().
    const spans = receiver.spans();
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({
      traceId: TRACE_ID,
      parentSpanId: PARENT,
      kind: 'SERVER',
      name: 'GET',
      scope: '@opentelemetry/instrumentation-http',
      encoding: 'protobuf',
      serviceName: 'shop',
      attributes: { 'http.request.method': 'GET', 'url.path': '/work', 'http.response.status_code': 200 },
    });
    expect(spans[0]!.resource).toMatchObject({ 'deployment.environment.name': 'file', team: 'web', 'tiergate.tier': 'app' });
    expect(quiet.requestCount()).toBe(0);
  });

  it('with no exporter keys in the file, the environment alone configures the exporter (here OTLP/JSON)', async () => {
    await using receiver = await startOtlpReceiver();
    const report = await runApp(JSON.stringify({ tracing: { enabled: true } }), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    });
    expect(report.enabled).toBe(true);
    expect(receiver.spans()).toMatchObject([{ traceId: TRACE_ID, parentSpanId: PARENT, encoding: 'json', serviceName: 'tiergate-app' }]);
  });

  it('OTEL_SDK_DISABLED=true turns it off, and OTEL_TRACES_SAMPLER wins over sampling_ratio', async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = tracingOn(receiver.url, { sampling_ratio: 1 });
    expect(await runApp(telemetry, { OTEL_SDK_DISABLED: 'TRUE' })).toEqual({ enabled: false, statuses: [200, 200] });
    expect(await runApp(telemetry, { OTEL_TRACES_SAMPLER: 'always_off' })).toEqual({ enabled: true, statuses: [200, 200] });
    expect(receiver.requestCount()).toBe(0);
  });

  it('refuses gRPC together with the file’s exporter settings (the proxy, reading the same file, cannot send it)', async () => {
    await expect(runApp(tracingOn('http://127.0.0.1:4317', { protocol: 'grpc' }))).rejects.toThrow(
      /'grpc'.*cannot be combined with the file's exporter settings/,
    );
  });
});

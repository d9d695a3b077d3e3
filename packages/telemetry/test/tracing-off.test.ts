import { startOtlpReceiver } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { lastJson, runChild, tracingOn } from './spawn-child.ts';

interface Probe {
  enabled: boolean;
  recording: boolean;
  modules: string[];
}

describe('tracing off', () => {
  it('loads no SDK module and exports nothing; the same probe with tracing on sees the SDK (control)', async () => {
    await using receiver = await startOtlpReceiver();
    const off = lastJson<Probe>(
      await runChild('module-probe-child.ts', { TG_TELEMETRY: JSON.stringify({ tracing: { enabled: false, endpoint: receiver.url } }) }),
    );
    expect(off).toEqual({ enabled: false, recording: false, modules: ['@opentelemetry/api'] });
    expect(receiver.requestCount()).toBe(0);

    const on = lastJson<Probe>(await runChild('module-probe-child.ts', { TG_TELEMETRY: tracingOn(receiver.url) }));
    expect(on.enabled).toBe(true);
    expect(on.recording).toBe(true);
    expect(on.modules).toContain('@opentelemetry/sdk-trace');
    // The OTLP exporter runs in a thread of its own (worker-exporter.ts), whose imports this thread's hook does not see.
    expect(on.modules).not.toContain('@opentelemetry/otlp-exporter-base');
    expect(on.modules).not.toContain('@opentelemetry/instrumentation-ioredis'); // proxy tier: no Redis hooks
    expect(receiver.spans().map((s) => s.name)).toEqual(['probe']);
  });
});

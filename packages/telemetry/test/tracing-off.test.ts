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
    // Ratio 1 (the default) with export_thread: auto exports from this thread: the OTLP exporter loads here.
    expect(on.modules).toContain('@opentelemetry/otlp-exporter-base');
    expect(on.modules).not.toContain('@opentelemetry/instrumentation-ioredis'); // proxy tier: no Redis hooks
    expect(receiver.spans().map((s) => s.name)).toEqual(['probe']);

    // With the exporter thread (auto below ratio 0.5, or `true`), the exporter loads in that thread, which this
    // thread's resolve hook does not see, and the span still arrives.
    for (const tracing of [{ sampling_ratio: 0.25 }, { export_thread: true }]) {
      const threaded = lastJson<Probe>(await runChild('module-probe-child.ts', { TG_TELEMETRY: tracingOn(receiver.url, tracing) }));
      expect(threaded.modules).toContain('@opentelemetry/sdk-trace');
      expect(threaded.modules).not.toContain('@opentelemetry/otlp-exporter-base');
    }
    expect(receiver.spans().filter((s) => s.name === 'probe').length).toBeGreaterThanOrEqual(2);
  });
});

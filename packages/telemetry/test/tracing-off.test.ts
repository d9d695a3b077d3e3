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

    // export_thread: false exports from this thread: the OTLP exporter loads here.
    const on = lastJson<Probe>(
      await runChild('module-probe-child.ts', { TG_TELEMETRY: tracingOn(receiver.url, { export_thread: false }) }),
    );
    expect(on.enabled).toBe(true);
    expect(on.recording).toBe(true);
    expect(on.modules).toContain('@opentelemetry/sdk-trace');
    expect(on.modules).toContain('@opentelemetry/otlp-exporter-base');
    expect(on.modules).not.toContain('@opentelemetry/instrumentation-ioredis'); // proxy tier: no Redis hooks
    expect(receiver.spans().map((s) => s.name)).toEqual(['probe']);

    // With the exporter thread (auto, the default, at any ratio; or `true`), the exporter loads in that thread, which
    // this thread's resolve hook does not see, and the span still arrives.
    for (const tracing of [{}, { sampling_ratio: 1, export_thread: 'auto' }, { export_thread: true }]) {
      const threaded = lastJson<Probe>(await runChild('module-probe-child.ts', { TG_TELEMETRY: tracingOn(receiver.url, tracing) }));
      expect(threaded.modules).toContain('@opentelemetry/sdk-trace');
      expect(threaded.modules).not.toContain('@opentelemetry/otlp-exporter-base');
    }
    expect(receiver.spans().filter((s) => s.name === 'probe').length).toBeGreaterThanOrEqual(4);
  });
});

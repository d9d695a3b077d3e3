import { startOtlpReceiver } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { lastJson, runChild, tracingOn } from './spawn-child.ts';

const ROOTS = 400;

async function sample(ratio: number) {
  await using receiver = await startOtlpReceiver();
  const run = await runChild('sampling-child.ts', {
    TG_TELEMETRY: tracingOn(receiver.url, { sampling_ratio: ratio }),
    TG_ROOTS: String(ROOTS),
  });
  const { recorded } = lastJson<{ recorded: string[] }>(run);
  const spans = receiver.spans();
  return { recorded, roots: spans.filter((s) => s.name.startsWith('root-')), names: new Set(spans.map((s) => s.name)) };
}

describe('sampling', () => {
  it('ratio 0 exports no root span, yet follows a remote parent that was sampled (parent-based)', async () => {
    const { recorded, roots, names } = await sample(0);
    expect(recorded).toEqual([]);
    expect(roots).toEqual([]);
    expect(names).toEqual(new Set(['remote-sampled']));
  });

  it('ratio 0.5 exports about half of 400 root spans: exactly those the sampler kept', async () => {
    const { recorded, roots, names } = await sample(0.5);
    // Trace ids are random, so the count is Binomial(400, 0.5): mean 200, sd 10; ±60 is 6 sd.
    expect(roots.length).toBeGreaterThan(140);
    expect(roots.length).toBeLessThan(260);
    expect(roots.map((s) => s.traceId).sort()).toEqual([...recorded].sort());
    expect(names.has('remote-sampled')).toBe(true);
    expect(names.has('remote-unsampled')).toBe(false);
  });

  it('ratio 1 exports every root span', async () => {
    const { roots } = await sample(1);
    expect(roots).toHaveLength(ROOTS);
  });
});

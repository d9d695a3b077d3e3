import * as upstream from '@opentelemetry/semantic-conventions';
import { describe, expect, it } from 'vitest';
import * as ours from '../src/semconv.ts';

describe('the semantic-convention names tracing.ts uses', () => {
  it('are those of @opentelemetry/semantic-conventions, each one', () => {
    const names = Object.keys(ours);
    expect(names.length).toBe(14);
    for (const name of names)
      expect([name, (ours as Record<string, string>)[name]]).toEqual([name, (upstream as Record<string, unknown>)[name]]);
  });
});

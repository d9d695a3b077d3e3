import { describe, expect, it } from 'vitest';
import { reloadOutcome, type WorkerReloadResult } from '../src/proxy-runtime/reload-config.ts';

const ok: WorkerReloadResult = { applied: true };
const refused: WorkerReloadResult = { applied: false, error: { code: 'TG_CONFIG_INVALID', message: 'cannot read TLS certificate' } };

describe('reloadOutcome: all workers end on one config', () => {
  it.each([
    ['every worker applied it', [ok, ok], { commit: true, rollBack: [], replace: [] }],
    ['one refused: the others roll back', [ok, refused, ok], { commit: false, rollBack: [0, 2], replace: [] }],
    ['every worker refused: nothing to roll back', [refused, refused], { commit: false, rollBack: [], replace: [] }],
    ['one did not answer: it is replaced, the reload stands', [ok, 'no answer'], { commit: true, rollBack: [], replace: [1] }],
    [
      'one refused, one silent: roll back, replace the silent one',
      ['no answer', refused, ok],
      { commit: false, rollBack: [2], replace: [0] },
    ],
    ['none answered: nothing is known to work', ['no answer', 'no answer'], { commit: false, rollBack: [], replace: [0, 1] }],
  ] as const)('%s', (_what, results, expected) => {
    expect(reloadOutcome(results)).toMatchObject(expected);
  });

  it('a refused reload answers with the refusing worker’s error', () => {
    expect(reloadOutcome([ok, refused]).error).toEqual(refused.error);
    expect(reloadOutcome(['no answer']).error?.code).toBe('TG_ADMIN_FAILED');
  });
});

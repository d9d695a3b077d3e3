import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { initialRiseFall, stepRiseFall } from '../src/index.ts';

/** Runs a sequence ('+' success, '-' failure) and returns the transitions as 'U@i' / 'D@i' (i = index of the result). */
function run(seq: string, rise: number, fall: number, initial: 'up' | 'down'): string[] {
  let state = initialRiseFall(initial);
  const out: string[] = [];
  [...seq].forEach((c, i) => {
    const step = stepRiseFall(state, c === '+', { rise, fall });
    if (step.transition) {
      expect(step.transition.previous).toBe(state.healthy);
      out.push(`${step.transition.healthy ? 'U' : 'D'}@${i}`);
    }
    expect(step.state.healthy).toBe(step.transition ? step.transition.healthy : state.healthy);
    state = step.state;
  });
  return out;
}

describe('rise/fall state machine', () => {
  it.each([
    // seq, rise, fall, initial, transitions
    ['+++', 2, 3, 'up', []],
    ['--+--+---', 2, 3, 'up', ['D@8']],
    ['---', 2, 3, 'up', ['D@2']],
    ['---+-++', 2, 3, 'up', ['D@2', 'U@6']],
    ['+', 2, 3, 'down', []],
    ['++', 2, 3, 'down', ['U@1']],
    ['+-+-++', 2, 3, 'down', ['U@5']],
    ['++---', 2, 3, 'down', ['U@1', 'D@4']],
    ['-+-+', 1, 1, 'up', ['D@0', 'U@1', 'D@2', 'U@3']],
    ['------', 1, 1, 'down', []],
    ['+++++', 5, 1, 'down', ['U@4']],
    ['++++-+++++', 5, 1, 'down', ['U@9']],
  ] as const)('%s with rise %i fall %i from %s', (seq, rise, fall, initial, expected) => {
    expect(run(seq, rise, fall, initial)).toEqual(expected);
  });

  it('counts the current streaks and resets the other one', () => {
    let s = initialRiseFall('up');
    expect(s).toEqual({ healthy: true, successes: 0, failures: 0 });
    s = stepRiseFall(s, true, { rise: 2, fall: 3 }).state;
    s = stepRiseFall(s, true, { rise: 2, fall: 3 }).state;
    expect(s).toEqual({ healthy: true, successes: 2, failures: 0 });
    s = stepRiseFall(s, false, { rise: 2, fall: 3 }).state;
    expect(s).toEqual({ healthy: true, successes: 0, failures: 1 });
  });

  it('is pure: the input state is not changed', () => {
    const s = Object.freeze(initialRiseFall('down'));
    const step = stepRiseFall(s, true, { rise: 1, fall: 1 });
    expect(s.healthy).toBe(false);
    expect(step.state.healthy).toBe(true);
  });
});

describe('rise/fall properties', () => {
  const arbitraries = [
    fc.array(fc.boolean(), { maxLength: 60 }),
    fc.integer({ min: 1, max: 5 }),
    fc.integer({ min: 1, max: 5 }),
    fc.constantFrom('up' as const, 'down' as const),
  ] as const;

  it('a transition completes a streak of exactly `rise` successes or `fall` failures, and directions alternate', () => {
    fc.assert(
      fc.property(...arbitraries, (results, rise, fall, initial) => {
        let state = initialRiseFall(initial);
        let healthy = initial === 'up';
        results.forEach((ok, i) => {
          const step = stepRiseFall(state, ok, { rise, fall });
          if (step.transition) {
            expect(step.transition).toEqual({ healthy: !healthy, previous: healthy });
            const need = step.transition.healthy ? rise : fall;
            const streak = results.slice(Math.max(0, i - need + 1), i + 1);
            expect(streak).toEqual(Array(need).fill(step.transition.healthy));
            // ...and not one result longer: a longer streak would have moved it earlier.
            if (i - need >= 0) expect(results[i - need]).toBe(!step.transition.healthy);
            healthy = step.transition.healthy;
          }
          state = step.state;
        });
        expect(state.healthy).toBe(healthy);
      }),
    );
  });

  it('ends in the state of the last results once their streak is long enough', () => {
    fc.assert(
      fc.property(...arbitraries, fc.boolean(), (results, rise, fall, initial, last) => {
        const seq = [...results, ...Array(Math.max(rise, fall)).fill(last)];
        const final = seq.reduce((s, ok) => stepRiseFall(s, ok, { rise, fall }).state, initialRiseFall(initial));
        expect(final.healthy).toBe(last);
      }),
    );
  });
});

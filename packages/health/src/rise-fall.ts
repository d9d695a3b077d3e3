/**
 * The rise/fall state machine of HAProxy and keepalived, pure: no timers, no I/O. A target goes down
 * after `fall` consecutive failures and up after `rise` consecutive successes; any opposite result
 * resets the streak. Feed it one check result at a time.
 */

export interface RiseFallState {
  readonly healthy: boolean;
  /** Current streak of successes (0 after a failure). */
  readonly successes: number;
  /** Current streak of failures (0 after a success). */
  readonly failures: number;
}

export interface RiseFallThresholds {
  readonly rise: number;
  readonly fall: number;
}

/** A change of health caused by one result. */
export interface RiseFallTransition {
  readonly healthy: boolean;
  readonly previous: boolean;
}

export interface RiseFallStep {
  readonly state: RiseFallState;
  /** Non-null exactly when `state.healthy` differs from the previous state's. */
  readonly transition: RiseFallTransition | null;
}

/**
 * The state before any check. 'up' is HAProxy's and keepalived's default (serve at once, `fall` failures
 * take it out); 'down' is keepalived's `alpha` (no traffic until `rise` successes).
 */
export function initialRiseFall(initial: 'up' | 'down'): RiseFallState {
  return { healthy: initial === 'up', successes: 0, failures: 0 };
}

/** Applies one check result. Pure: same inputs, same output. */
export function stepRiseFall(state: RiseFallState, ok: boolean, t: RiseFallThresholds): RiseFallStep {
  const successes = ok ? state.successes + 1 : 0;
  const failures = ok ? 0 : state.failures + 1;
  let healthy = state.healthy;
  if (!healthy && successes >= t.rise) healthy = true;
  else if (healthy && failures >= t.fall) healthy = false;
  const next = { healthy, successes, failures };
  return { state: next, transition: healthy === state.healthy ? null : { healthy, previous: state.healthy } };
}

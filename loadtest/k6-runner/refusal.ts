/**
 * The runner's one rule: a script must never silently mean something else than under k6. Every k6 API, module,
 * option or parameter the runner does not implement throws this error, naming it; the run stops with exit 104
 * (k6's exit code for an invalid configuration) instead of measuring something else.
 */
export class K6Unsupported extends Error {
  override readonly name = 'K6Unsupported';

  constructor(what: string, hint?: string) {
    super(
      `${what} is not implemented by the tiergate k6 runner (loadtest/k6-runner); run the script with real k6, ` +
        `or implement it in the runner${hint ? ` (${hint})` : ''}`,
    );
  }
}

/** Exit code of a refused script (k6's `InvalidConfig`). */
export const REFUSED_EXIT = 104;

/** True for a K6Unsupported, also one that crossed a thread boundary (structured clone keeps only name and message). */
export function isRefusal(err: unknown): boolean {
  return err instanceof Error && err.name === 'K6Unsupported';
}

/** A function that refuses when called: stands for a known k6 export the runner does not implement. */
export function refused(what: string): (...args: unknown[]) => never {
  return () => {
    throw new K6Unsupported(what);
  };
}

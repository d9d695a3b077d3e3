/**
 * Health checking shared by the proxy (app servers) and the director (real servers).
 * One `Checker` per kind (tcp, http, command), one file each, behind this interface; the
 * rise/fall state machine is separate and pure.
 */

export interface CheckResult {
  readonly ok: boolean;
  /** Why it failed (or what it saw), for logs and /status. */
  readonly detail: string;
  readonly durationMs: number;
}

/** One probe of one target. Must resolve (never reject) within `timeoutMs`, and honour `signal`. */
export interface Checker {
  readonly kind: 'tcp' | 'http' | 'command';
  check(target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult>;
}

export interface CheckTarget {
  readonly host: string;
  readonly port: number;
}

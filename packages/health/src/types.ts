/**
 * Health checking shared by the proxy (app servers) and the director (real servers).
 * One `Checker` per kind (tcp, http, command, grpc), one file each, behind this interface; the
 * rise/fall state machine is separate and pure.
 */

export interface CheckResult {
  readonly ok: boolean;
  /** Why it failed (or what it saw), for logs and /status. */
  readonly detail: string;
  readonly durationMs: number;
  /**
   * A weight the target asked for (keepalived `misc_dynamic`: a command exiting with 2..255 is healthy with
   * weight = code - 2). Absent when the check says nothing about weight.
   */
  readonly weight?: number;
}

/** One probe of one target. Must resolve (never reject) within `timeoutMs`, and honour `signal`. */
export interface Checker {
  readonly kind: 'tcp' | 'http' | 'https' | 'command' | 'grpc';
  check(target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult>;
  /** Releases what the checker holds (the HTTP checker's connection pool). Checks after `close()` fail. */
  close?(): Promise<void>;
}

export interface CheckTarget {
  readonly host: string;
  readonly port: number;
}

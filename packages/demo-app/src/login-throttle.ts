/** Limits on failed logins (per app instance: see LoginThrottle). */
export interface LoginThrottleOptions {
  /** Failed logins for one user name within `windowMs` before its logins are refused (default 5). */
  perUser?: number;
  /** Failed logins from one client address within `windowMs` before its logins are refused (default 20). */
  perAddress?: number;
  /** Length of the window that counts failures, from the first one (default 5 minutes). */
  windowMs?: number;
  /** Counters kept at most; beyond it the oldest go first (default 10 000), so a flood cannot grow memory. */
  maxKeys?: number;
  /** Clock in milliseconds (tests move it). */
  now?: () => number;
}

interface Window {
  failures: number;
  resetAt: number;
}

/**
 * Counts failed logins per user name and per client address in fixed windows and refuses further
 * attempts from either once over its limit until the window ends: password guessing is slowed to the
 * limit per window, against one account (perUser) or from one address across accounts (perAddress).
 * Throttling rather than locking: the refusal ends with the window. The counters live in this process,
 * so behind N app servers a client gets up to N times the limit; a shared limit belongs in the shared
 * store (Redis) and is not what a demo needs.
 */
export class LoginThrottle {
  readonly #perUser: number;
  readonly #perAddress: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, Window>();

  constructor(options: LoginThrottleOptions = {}) {
    this.#perUser = options.perUser ?? 5;
    this.#perAddress = options.perAddress ?? 20;
    this.#windowMs = options.windowMs ?? 5 * 60_000;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Milliseconds until a login for `user` from `address` may be tried again; 0 = it may now. */
  retryAfterMs(user: string, address: string): number {
    return Math.max(this.#wait(`u\0${user}`, this.#perUser), this.#wait(`a\0${address}`, this.#perAddress));
  }

  /** Records a failed login. */
  fail(user: string, address: string): void {
    this.#count(`u\0${user}`);
    this.#count(`a\0${address}`);
  }

  /** Records a successful login: the user's failures are forgiven (not the address's: one own account must not reset it). */
  succeed(user: string): void {
    this.#windows.delete(`u\0${user}`);
  }

  #wait(key: string, limit: number): number {
    const window = this.#windows.get(key);
    if (window === undefined) return 0;
    const left = window.resetAt - this.#now();
    if (left <= 0) {
      this.#windows.delete(key);
      return 0;
    }
    return window.failures >= limit ? left : 0;
  }

  #count(key: string): void {
    const now = this.#now();
    const window = this.#windows.get(key);
    if (window !== undefined && window.resetAt > now) {
      window.failures++;
      return;
    }
    this.#windows.delete(key);
    if (this.#windows.size >= this.#maxKeys) this.#evict(now);
    this.#windows.set(key, { failures: 1, resetAt: now + this.#windowMs });
  }

  /** Drops ended windows, then (still full) the oldest: a Map iterates in insertion order. */
  #evict(now: number): void {
    for (const [key, window] of this.#windows) if (window.resetAt <= now) this.#windows.delete(key);
    for (const key of this.#windows.keys()) {
      if (this.#windows.size < this.#maxKeys) break;
      this.#windows.delete(key);
    }
  }
}

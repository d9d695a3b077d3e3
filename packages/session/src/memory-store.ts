import { assertSessionSize, emptyFields } from './session-codec.ts';
import {
  DEFAULT_MAX_BYTES,
  DEFAULT_TTL_SECONDS,
  type SessionFields,
  type SessionPatch,
  type SessionStore,
  type SessionStoreMetrics,
} from './session-store.ts';

export interface MemoryStoreOptions {
  ttlSeconds?: number;
  maxBytes?: number;
  /** Clock in milliseconds (a parameter so tests can move time). */
  now?: () => number;
  /**
   * How often, at most, a call walks every entry to drop the expired ones (default 60 s). Without the
   * sweep a session that is never read again (a client that left, a bot that ignores cookies) stays
   * in memory for the life of the process.
   */
  sweepIntervalMs?: number;
}

const DEFAULT_SWEEP_INTERVAL_MS = 60_000;

interface Entry {
  fields: SessionFields;
  expiresAt: number;
}

/**
 * Sessions in this process's memory. Correct for one app server, and the teaching control for the
 * bug sessions-in-Redis fix: behind a round-robin balancer each app server has its own MemoryStore,
 * so a captcha stored on one is unknown to the next. Same patch semantics as RedisSessionStore.
 * Expired entries are dropped when read and, at most every `sweepIntervalMs`, all at once by the next
 * call (amortized in the calls rather than on a timer, so the store holds no timer and its clock
 * stays a parameter): memory stays bounded by the sessions of one TTL plus one interval.
 */
export class MemoryStore implements SessionStore {
  readonly ttlSeconds: number;
  readonly maxBytes: number;
  readonly #now: () => number;
  readonly #sweepIntervalMs: number;
  readonly #entries = new Map<string, Entry>();
  #nextSweepAt: number;

  constructor(options: MemoryStoreOptions = {}) {
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#now = options.now ?? Date.now;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.#nextSweepAt = this.#now() + this.#sweepIntervalMs;
  }

  /** Sessions held, expired ones not yet swept included (for metrics and tests). */
  get size(): number {
    return this.#entries.size;
  }

  async get(id: string): Promise<SessionFields | null> {
    const entry = this.#live(id);
    return entry ? Object.assign(emptyFields(), entry.fields) : null;
  }

  async set(id: string, patch: SessionPatch, ttlSeconds = this.ttlSeconds): Promise<boolean> {
    assertSessionSize(patch.set, this.maxBytes);
    const current = this.#live(id);
    if (patch.ifExists && !patch.replace && current === undefined) return false;
    const fields = patch.replace ? emptyFields() : Object.assign(emptyFields(), current?.fields);
    Object.assign(fields, patch.set);
    for (const key of patch.delete) delete fields[key];
    // An empty hash does not exist in Redis either: a session whose keys are all deleted is gone.
    if (Object.keys(fields).length === 0) this.#entries.delete(id);
    else this.#entries.set(id, { fields, expiresAt: this.#now() + ttlSeconds * 1000 });
    return true;
  }

  async take(id: string, field: string): Promise<string | null> {
    const entry = this.#live(id);
    if (entry === undefined || !Object.hasOwn(entry.fields, field)) return null;
    const value = entry.fields[field]!;
    delete entry.fields[field];
    if (Object.keys(entry.fields).length === 0) this.#entries.delete(id);
    return value;
  }

  /** Drops every expired entry now (the calls also do it by themselves every `sweepIntervalMs`). */
  sweep(): void {
    const now = this.#now();
    for (const [id, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(id);
    this.#nextSweepAt = now + this.#sweepIntervalMs;
  }

  async destroy(id: string): Promise<void> {
    this.#entries.delete(id);
  }

  async touch(id: string, ttlSeconds = this.ttlSeconds): Promise<boolean> {
    const entry = this.#live(id);
    if (entry) entry.expiresAt = this.#now() + ttlSeconds * 1000;
    return entry !== undefined;
  }

  metrics(): SessionStoreMetrics {
    return { failures: 0, corrupt: 0 };
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }

  #live(id: string): Entry | undefined {
    if (this.#now() >= this.#nextSweepAt) this.sweep();
    const entry = this.#entries.get(id);
    if (entry && entry.expiresAt <= this.#now()) {
      this.#entries.delete(id);
      return undefined;
    }
    return entry;
  }
}

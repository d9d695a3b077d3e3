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
}

interface Entry {
  fields: SessionFields;
  expiresAt: number;
}

/**
 * Sessions in this process's memory. Correct for one app server, and the teaching control for the
 * bug sessions-in-Redis fix: behind a round-robin balancer each app server has its own MemoryStore,
 * so a captcha stored on one is unknown to the next. Same patch semantics as RedisSessionStore.
 */
export class MemoryStore implements SessionStore {
  readonly ttlSeconds: number;
  readonly maxBytes: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: MemoryStoreOptions = {}) {
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#now = options.now ?? Date.now;
  }

  async get(id: string): Promise<SessionFields | null> {
    const entry = this.#live(id);
    return entry ? Object.assign(emptyFields(), entry.fields) : null;
  }

  async set(id: string, patch: SessionPatch, ttlSeconds = this.ttlSeconds): Promise<void> {
    assertSessionSize(patch.set, this.maxBytes);
    const fields = patch.replace ? emptyFields() : Object.assign(emptyFields(), this.#live(id)?.fields);
    Object.assign(fields, patch.set);
    for (const key of patch.delete) delete fields[key];
    // An empty hash does not exist in Redis either: a session whose keys are all deleted is gone.
    if (Object.keys(fields).length === 0) this.#entries.delete(id);
    else this.#entries.set(id, { fields, expiresAt: this.#now() + ttlSeconds * 1000 });
  }

  async destroy(id: string): Promise<void> {
    this.#entries.delete(id);
  }

  async touch(id: string, ttlSeconds = this.ttlSeconds): Promise<void> {
    const entry = this.#live(id);
    if (entry) entry.expiresAt = this.#now() + ttlSeconds * 1000;
  }

  metrics(): SessionStoreMetrics {
    return { failures: 0, corrupt: 0 };
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }

  #live(id: string): Entry | undefined {
    const entry = this.#entries.get(id);
    if (entry && entry.expiresAt <= this.#now()) {
      this.#entries.delete(id);
      return undefined;
    }
    return entry;
  }
}

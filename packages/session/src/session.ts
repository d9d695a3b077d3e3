import { TgError } from '@tiergate/errors';
import {
  assertSessionSize,
  decodeSession,
  diffSession,
  emptyFields,
  encodeSession,
  isEmptyPatch,
  type SessionData,
} from './session-codec.ts';
import type { RandomBytes } from './session-id.ts';
import { newSessionId } from './session-id.ts';
import { inSessionSpan } from './session-span.ts';
import type { SessionFields, SessionStore } from './session-store.ts';

/** What one save did, as the `tiergate.session.write` attribute of its span says. */
type SessionWrite = 'set' | 'regenerate' | 'destroy' | 'touch' | 'gone' | 'none';

/**
 * The hash field that holds when the session was created (ms since the epoch, JSON), for the absolute
 * lifetime. The NUL makes it a name no form field and no ordinary code uses; it never appears in
 * `data`, and a key of that name in `data` is not written.
 */
export const CREATED_FIELD = '\u0000created';

/** What a Session needs from its manager to persist itself and tell the client its cookie. */
export interface SessionContext {
  store: SessionStore;
  rolling: boolean;
  randomBytes: RandomBytes;
  /** Longest life of a session from its creation, however often it is renewed; 0 = none. */
  absoluteTtlMs: number;
  /** Clock in milliseconds (a parameter so tests can move time). */
  now: () => number;
  /** Sends the session cookie for `id` with this Max-Age (undefined: clear it). */
  sendCookie(id: string | undefined, maxAgeSeconds: number): void;
}

/** A stored session as read for a request: its data fields, decoded data and creation time. */
export interface LoadedSession {
  fields: SessionFields;
  data: SessionData;
  /** Undefined for a session stored before creation times were (it gets one at its next save). */
  created: number | undefined;
}

/**
 * Splits what the store returned into the data and the creation time; undefined when the session is
 * past its absolute lifetime (the store's TTL is capped to that deadline, so this only matters when
 * the app servers' clocks disagree). TG_SESSION_CORRUPT for a field that is not JSON.
 */
export function readStoredSession(context: SessionContext, stored: SessionFields): LoadedSession | undefined {
  const fields = emptyFields();
  Object.assign(fields, stored);
  const createdJson = fields[CREATED_FIELD];
  delete fields[CREATED_FIELD];
  const created = createdJson === undefined ? undefined : Number(createdJson);
  if (created !== undefined && !Number.isFinite(created)) {
    throw new TgError('TG_SESSION_CORRUPT', 'session creation time is not a number');
  }
  if (created !== undefined && context.absoluteTtlMs > 0 && context.now() >= created + context.absoluteTtlMs) return undefined;
  return { fields, data: decodeSession(fields), created };
}

/**
 * One request's view of a session. Handlers change `data` freely; `save()` writes only the top-level
 * keys whose JSON changed (or that were deleted), so concurrent requests on other app servers that
 * change other keys keep their writes: last writer wins per top-level key. `regenerate()` and
 * `destroy()` take effect at `save()`, which must run before the response is written. A save never
 * brings back a session that was deleted meanwhile (a logout or a regenerate on another app server):
 * it writes nothing and sends no cookie.
 */
export class Session {
  data: SessionData;
  /** True when the request carried a cookie of the session's name (valid, unknown or not). */
  readonly cookieReceived: boolean;
  #id: string;
  #isNew: boolean;
  /** Data fields as last read from or written to the store: the base the next save diffs against. */
  #stored: SessionFields;
  #created: number | undefined;
  /** Set by regenerate(): the stored id to delete at save. */
  #replacedId: string | undefined;
  #regenerated = false;
  #destroyed = false;
  readonly #context: SessionContext;

  constructor(context: SessionContext, id: string, loaded: LoadedSession | undefined, cookieReceived = false) {
    this.#context = context;
    this.#id = id;
    this.#isNew = loaded === undefined;
    this.#stored = loaded?.fields ?? emptyFields();
    this.#created = loaded?.created;
    this.data = loaded?.data ?? {};
    this.cookieReceived = cookieReceived;
  }

  get id(): string {
    return this.#id;
  }

  /** True until the session has been saved once (no cookie was accepted for it). */
  get isNew(): boolean {
    return this.#isNew;
  }

  /**
   * Gives the session a new id, keeping its data; the old id is deleted at save. Call it when the
   * privilege level changes (login) so an id planted before login is worthless (session fixation).
   * The new id starts a new absolute lifetime.
   */
  regenerate(): void {
    if (!this.#isNew && this.#replacedId === undefined) this.#replacedId = this.#id;
    this.#id = newSessionId(this.#context.randomBytes);
    this.#regenerated = true;
  }

  /** Ends the session: at save it is deleted from the store and the cookie is cleared. */
  destroy(): void {
    this.#destroyed = true;
    this.data = {};
  }

  /**
   * Removes `key` from the stored session now and returns the value it had there (undefined when it
   * had none), atomically in the store: of concurrent requests taking the same key, one gets the
   * value. For one-time values such as a captcha, which `data` (read when the request began) cannot
   * spend safely: two parallel requests would both see it. A local change of `data[key]` is dropped.
   * Traced as an INTERNAL span `session take` with `tiergate.session.taken` (the key was there).
   */
  async take(key: string): Promise<unknown> {
    delete this.data[key];
    if (this.#isNew || key === CREATED_FIELD) return undefined;
    delete this.#stored[key];
    const json = await inSessionSpan('session take', async (span) => {
      const value = await this.#context.store.take(this.#id, key);
      span.setAttribute('tiergate.session.taken', value !== null);
      return value;
    });
    if (json === null) return undefined;
    try {
      return JSON.parse(json) as unknown;
    } catch (cause) {
      throw new TgError('TG_SESSION_CORRUPT', `session field '${key}' is not valid JSON`, { cause });
    }
  }

  /**
   * Persists the changes (TG_SESSION_TOO_LARGE before any write when over the store's maxBytes). Traced as
   * an INTERNAL span `session save` whose `tiergate.session.write` says what it did: `set` (changed keys
   * written), `regenerate`, `destroy`, `touch` (TTL renewed only), `gone` (the session was deleted
   * meanwhile: nothing written, no cookie) or `none`.
   */
  save(): Promise<void> {
    return inSessionSpan('session save', async (span) => {
      span.setAttribute('tiergate.session.write', await this.#save());
    });
  }

  async #save(): Promise<SessionWrite> {
    const { store } = this.#context;
    if (this.#destroyed) {
      await this.#saveDestroyed();
      return 'destroy';
    }
    const fields = encodeSession(this.data);
    delete fields[CREATED_FIELD];
    assertSessionSize(fields, store.maxBytes);
    const empty = Object.keys(fields).length === 0;
    let write: SessionWrite;
    if (this.#regenerated || this.#isNew) write = await this.#saveCreated(fields, empty);
    else write = await this.#saveUpdate(fields, empty);
    if (write === 'gone') {
      this.#forget();
      return write;
    }
    this.#stored = fields;
    this.#regenerated = false;
    this.#replacedId = undefined;
    // Redis has no empty hashes: a session saved with no keys does not exist in the store.
    this.#isNew = empty;
    return write;
  }

  /** A new session, or a regenerated one: the whole session under its (new, random) id. */
  async #saveCreated(fields: SessionFields, empty: boolean): Promise<SessionWrite> {
    const { store } = this.#context;
    if (!empty) {
      this.#created = this.#context.now();
      const set = Object.assign(emptyFields(), fields, { [CREATED_FIELD]: String(this.#created) });
      // Write the new id before deleting the old one: a crash in between leaves an orphan that
      // expires, never a logged-in user without a session.
      await store.set(this.#id, { set, delete: [], replace: true }, this.#ttlSeconds());
    }
    if (this.#replacedId !== undefined) await store.destroy(this.#replacedId);
    if (!empty || this.#replacedId !== undefined) this.#context.sendCookie(empty ? undefined : this.#id, this.#ttlSeconds());
    if (this.#regenerated) return 'regenerate';
    return empty ? 'none' : 'set';
  }

  /** A stored session: only the changed keys, and only while it still exists. */
  async #saveUpdate(fields: SessionFields, empty: boolean): Promise<SessionWrite> {
    const { store } = this.#context;
    const patch = diffSession(this.#stored, fields);
    // No data left: delete the creation time too, so the hash (and the session) is gone as before.
    if (empty) patch.delete.push(CREATED_FIELD);
    else if (this.#created === undefined) {
      // A session stored before creation times were: its absolute lifetime starts now.
      this.#created = this.#context.now();
      patch.set[CREATED_FIELD] = String(this.#created);
    }
    const ttl = this.#ttlSeconds();
    if (!isEmptyPatch(patch)) {
      if (!(await store.set(this.#id, { ...patch, ifExists: true }, ttl))) return 'gone';
      this.#context.sendCookie(empty ? undefined : this.#id, ttl);
      return 'set';
    }
    if (!this.#context.rolling) return 'none';
    if (!(await store.touch(this.#id, ttl))) return 'gone';
    this.#context.sendCookie(this.#id, ttl);
    return 'touch';
  }

  /**
   * The lifetime of the next write: the store's TTL, cut to what is left of the absolute lifetime, so
   * that the store itself drops the session at its deadline however often it is renewed.
   */
  #ttlSeconds(): number {
    const { store, absoluteTtlMs, now } = this.#context;
    if (absoluteTtlMs <= 0 || this.#created === undefined) return store.ttlSeconds;
    const left = Math.ceil((this.#created + absoluteTtlMs - now()) / 1000);
    return Math.max(1, Math.min(store.ttlSeconds, left));
  }

  /**
   * After a save found the session deleted: nothing of it is kept, and a later save in this request
   * starts a new session under a new id instead of writing the deleted one back.
   */
  #forget(): void {
    this.data = {};
    this.#stored = emptyFields();
    this.#created = undefined;
    this.#isNew = true;
    this.#regenerated = false;
    this.#replacedId = undefined;
    this.#id = newSessionId(this.#context.randomBytes);
  }

  async #saveDestroyed(): Promise<void> {
    if (!this.#isNew) await this.#context.store.destroy(this.#id);
    if (this.#replacedId !== undefined) await this.#context.store.destroy(this.#replacedId);
    this.#context.sendCookie(undefined, 0);
    this.#destroyed = false;
    this.#regenerated = false;
    this.#replacedId = undefined;
    this.#isNew = true;
    this.#stored = emptyFields();
    this.#created = undefined;
    this.#id = newSessionId(this.#context.randomBytes);
  }
}

import { assertSessionSize, diffSession, emptyFields, encodeSession, isEmptyPatch, type SessionData } from './session-codec.ts';
import type { RandomBytes } from './session-id.ts';
import { newSessionId } from './session-id.ts';
import { inSessionSpan } from './session-span.ts';
import type { SessionFields, SessionStore } from './session-store.ts';

/** What one save did, as the `tiergate.session.write` attribute of its span says. */
type SessionWrite = 'set' | 'regenerate' | 'destroy' | 'touch' | 'none';

/** What a Session needs from its manager to persist itself and tell the client its cookie. */
export interface SessionContext {
  store: SessionStore;
  rolling: boolean;
  randomBytes: RandomBytes;
  /** Sends the session cookie for `id` (undefined: clear it). */
  sendCookie(id: string | undefined): void;
}

/**
 * One request's view of a session. Handlers change `data` freely; `save()` writes only the top-level
 * keys whose JSON changed (or that were deleted), so concurrent requests on other app servers that
 * change other keys keep their writes: last writer wins per top-level key. `regenerate()` and
 * `destroy()` take effect at `save()`, which must run before the response is written.
 */
export class Session {
  data: SessionData;
  #id: string;
  #isNew: boolean;
  /** Fields as last read from or written to the store: the base the next save diffs against. */
  #stored: SessionFields;
  /** Set by regenerate(): the stored id to delete at save. */
  #replacedId: string | undefined;
  #regenerated = false;
  #destroyed = false;
  readonly #context: SessionContext;

  constructor(context: SessionContext, id: string, stored: SessionFields | null, data: SessionData) {
    this.#context = context;
    this.#id = id;
    this.#isNew = stored === null;
    this.#stored = stored ?? emptyFields();
    this.data = data;
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
   * Persists the changes (TG_SESSION_TOO_LARGE before any write when over the store's maxBytes). Traced as
   * an INTERNAL span `session save` whose `tiergate.session.write` says what it did: `set` (changed keys
   * written), `regenerate`, `destroy`, `touch` (TTL renewed only) or `none`.
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
    assertSessionSize(fields, store.maxBytes);
    const empty = Object.keys(fields).length === 0;
    let write: SessionWrite = 'none';
    if (this.#regenerated) {
      write = 'regenerate';
      // Write the new id before deleting the old one: a crash in between leaves an orphan that
      // expires, never a logged-in user without a session.
      if (!empty) await store.set(this.#id, { set: fields, delete: [], replace: true });
      if (this.#replacedId !== undefined) await store.destroy(this.#replacedId);
      if (!empty || this.#replacedId !== undefined) this.#context.sendCookie(empty ? undefined : this.#id);
    } else {
      const patch = diffSession(this.#stored, fields);
      if (!isEmptyPatch(patch)) {
        write = 'set';
        await store.set(this.#id, patch);
        this.#context.sendCookie(this.#id);
      } else if (!this.#isNew && this.#context.rolling) {
        write = 'touch';
        await store.touch(this.#id);
        this.#context.sendCookie(this.#id);
      }
    }
    this.#stored = fields;
    this.#regenerated = false;
    this.#replacedId = undefined;
    // Redis has no empty hashes: a session saved with no keys does not exist in the store.
    this.#isNew = empty;
    return write;
  }

  async #saveDestroyed(): Promise<void> {
    if (!this.#isNew) await this.#context.store.destroy(this.#id);
    if (this.#replacedId !== undefined) await this.#context.store.destroy(this.#replacedId);
    this.#context.sendCookie(undefined);
    this.#destroyed = false;
    this.#replacedId = undefined;
    this.#isNew = true;
    this.#stored = emptyFields();
    this.#id = newSessionId(this.#context.randomBytes);
  }
}

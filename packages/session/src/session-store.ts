/**
 * A session as stored: one field per top-level key of the session data, each value JSON text.
 * Storing per top-level key (a Redis HASH) is what lets two app servers that change different keys
 * of one session at the same time both keep their change.
 */
export type SessionFields = Record<string, string>;

/**
 * The change a save applies atomically: set these fields, delete those; `replace` first drops every
 * other field (used after regenerate and by the express-session adapter, which always hands over the
 * whole session). Semantics for concurrent saves: last writer wins per top-level key.
 */
export interface SessionPatch {
  set: SessionFields;
  delete: string[];
  replace?: boolean;
  /**
   * Apply only when the session still exists; otherwise write nothing. A save of a session loaded
   * earlier in the request sets it, so a save that races a destroy (a logout, or a regenerate on
   * another app server) cannot bring the deleted session back with the keys it changed.
   */
  ifExists?: boolean;
}

/** Counters a store exposes for metrics and tests. */
export interface SessionStoreMetrics {
  /** Operations that failed because the backend was unreachable (TG_SESSION_STORE_UNAVAILABLE). */
  failures: number;
  /** Reads that found data that is not a valid session (TG_SESSION_CORRUPT). */
  corrupt: number;
}

/**
 * The one extension point for session storage. Implementations: RedisSessionStore (shared by every
 * app server) and MemoryStore (one process only). Failures are TgErrors: TG_SESSION_STORE_UNAVAILABLE
 * when the backend cannot be reached, TG_SESSION_CORRUPT when stored data is not a session,
 * TG_SESSION_TOO_LARGE when a patch exceeds `maxBytes`.
 */
export interface SessionStore {
  /** Default lifetime of a session after its last save or touch. */
  readonly ttlSeconds: number;
  /** Limit on the serialized size of one session (field names plus JSON values, in bytes). */
  readonly maxBytes: number;
  /** The stored fields, or null when there is no such session (never saved, expired or destroyed). */
  get(id: string): Promise<SessionFields | null>;
  /**
   * Applies `patch` atomically and resets the lifetime to `ttlSeconds` (default: the store's). Resolves
   * false when nothing was written because `patch.ifExists` found no session, else true.
   */
  set(id: string, patch: SessionPatch, ttlSeconds?: number): Promise<boolean>;
  /**
   * Removes one field and returns its value, atomically: of concurrent takes of one field exactly one
   * gets the value (a one-time token such as a captcha is spent once). Null when the field or the
   * session does not exist.
   */
  take(id: string, field: string): Promise<string | null>;
  /** Deletes the session; deleting an absent one is not an error. */
  destroy(id: string): Promise<void>;
  /** Resets the lifetime of an existing session without changing it; false when there is none. */
  touch(id: string, ttlSeconds?: number): Promise<boolean>;
  metrics(): SessionStoreMetrics;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

/** Default lifetime: one day. */
export const DEFAULT_TTL_SECONDS = 86_400;
/** Default size limit: 64 KiB. */
export const DEFAULT_MAX_BYTES = 64 * 1024;
/** Default absolute lifetime of a session (sessionMiddleware's `absoluteTtlSeconds`): one day. */
export const DEFAULT_ABSOLUTE_TTL_SECONDS = 86_400;

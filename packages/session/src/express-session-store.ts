import { decodeSession, encodeSession, type SessionData } from './session-codec.ts';
import type { SessionStore } from './session-store.ts';

type Callback<T = unknown> = (err?: unknown, value?: T | null) => void;

/** The callback-style store methods express-session calls (the contract connect-redis implements). */
export interface ExpressStoreMethods {
  get(sid: string, callback: Callback<SessionData>): void;
  set(sid: string, session: SessionData, callback?: Callback): void;
  destroy(sid: string, callback?: Callback): void;
  touch(sid: string, session: SessionData, callback?: Callback): void;
}

// biome-ignore lint/suspicious/noExplicitAny: express-session's Store is abstract and takes any arguments.
type StoreBase = abstract new (...args: any[]) => object;

/**
 * An express-session store backed by a tiergate SessionStore. Pass express-session's own `Store`
 * class as `Base` (`createExpressSessionStore(session.Store, store)`, as connect-redis once took
 * `session`): the result then inherits regenerate/load/createSession, and express-session stays out of
 * this package's runtime dependencies. express-session always hands over the whole session, so `set`
 * replaces it (no per-key merge here, as with connect-redis). The TTL follows the cookie's maxAge.
 */
export function createExpressSessionStore<B extends StoreBase>(Base: B, store: SessionStore): InstanceType<B> & ExpressStoreMethods {
  const ttlOf = (session: SessionData): number => {
    const maxAge = (session.cookie as { maxAge?: unknown } | undefined)?.maxAge;
    return typeof maxAge === 'number' && maxAge > 0 ? Math.ceil(maxAge / 1000) : store.ttlSeconds;
  };
  const settle = <T>(work: Promise<T | null>, callback: Callback<T> | undefined) => {
    work.then(
      (value) => callback?.(null, value),
      (err: unknown) => callback?.(err),
    );
  };

  // Store is abstract only over get/set/destroy, which this class implements.
  const Concrete = Base as unknown as new () => object;
  class TiergateExpressStore extends Concrete implements ExpressStoreMethods {
    get(sid: string, callback: Callback<SessionData>): void {
      settle(
        store.get(sid).then((fields) => (fields === null ? null : decodeSession(fields))),
        callback,
      );
    }

    set(sid: string, session: SessionData, callback?: Callback): void {
      settle(store.set(sid, { set: encodeSession(session), delete: [], replace: true }, ttlOf(session)), callback);
    }

    destroy(sid: string, callback?: Callback): void {
      settle(store.destroy(sid), callback);
    }

    touch(sid: string, session: SessionData, callback?: Callback): void {
      settle(store.touch(sid, ttlOf(session)), callback);
    }
  }
  return new TiergateExpressStore() as InstanceType<B> & ExpressStoreMethods;
}

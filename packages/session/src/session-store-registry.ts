import type { DeepReadonly, SessionsConfig } from '@tiergate/config';
import { MemoryStore } from './memory-store.ts';
import { RedisSessionStore, type RedisSessionStoreOptions } from './redis-session-store.ts';
import type { SessionOptions } from './session-middleware.ts';
import type { SessionStore } from './session-store.ts';

/** The `sessions` section of a loaded tiergate.yaml. */
export type SessionsSection = DeepReadonly<SessionsConfig>;

export type SessionStoreFactory = (config: SessionsSection) => SessionStore;

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** The RedisSessionStore options a `sessions` section describes. */
export function redisOptionsFromConfig(config: SessionsSection): RedisSessionStoreOptions {
  const { redis } = config;
  return {
    mode: redis.mode,
    url: redis.url,
    nodes: redis.nodes?.map((n) => ({ ...n })),
    sentinels: redis.sentinels?.map((n) => ({ ...n })),
    name: redis.master_name,
    db: redis.db,
    username: redis.username,
    password: redis.password,
    tls: redis.tls,
    commandTimeoutMs: redis.command_timeout,
    keyPrefix: config.key_prefix,
    ttlSeconds: seconds(config.ttl),
    maxBytes: config.max_size,
  };
}

/** One factory per `sessions.store` value; the composition root picks by name. */
export const SESSION_STORES: Readonly<Record<SessionsConfig['store'], SessionStoreFactory>> = {
  redis: (config) => new RedisSessionStore(redisOptionsFromConfig(config)),
  memory: (config) => new MemoryStore({ ttlSeconds: seconds(config.ttl), maxBytes: config.max_size }),
};

/** The store a `sessions` section configures (not yet connected for Redis: await its ready()). */
export function createSessionStore(config: SessionsSection): SessionStore {
  return SESSION_STORES[config.store](config);
}

/**
 * sessionMiddleware options for a `sessions` section and the store built from it. `secure` is the
 * cookie's Secure attribute as the whole file decides it (sessionCookieSecure of @tiergate/config,
 * which reads the listeners); without it an unset `cookie.secure` stays Secure.
 */
export function sessionOptionsFromConfig(config: SessionsSection, store: SessionStore, secure?: boolean): SessionOptions {
  const { cookie } = config;
  return {
    store,
    secrets: config.secrets,
    cookieName: cookie.name,
    cookie: {
      httpOnly: cookie.http_only,
      secure: cookie.secure ?? secure,
      sameSite: cookie.same_site,
      path: cookie.path,
      domain: cookie.domain,
    },
    rolling: config.rolling,
    absoluteTtlSeconds: config.absolute_ttl / 1000,
  };
}

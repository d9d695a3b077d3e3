export { createExpressSessionStore, type ExpressStoreMethods } from './express-session-store.ts';
export { type FastifyInstanceLike, type FastifyRequestLike, fastifySession, getSession } from './fastify-session-plugin.ts';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.ts';
export { createRedisClient, type RedisAddress, RedisSessionStore, type RedisSessionStoreOptions } from './redis-session-store.ts';
export { CREATED_FIELD, Session } from './session.ts';
export {
  assertSessionSize,
  decodeSession,
  diffSession,
  encodeSession,
  type SessionData,
  sizeOfFields,
} from './session-codec.ts';
export { isSessionId, newSessionId, type RandomBytes, signSessionId, verifySignedSessionId } from './session-id.ts';
export {
  errorReply,
  type HeaderSink,
  type SessionCookieOptions,
  type SessionHandler,
  type SessionManager,
  type SessionOptions,
  type SessionReply,
  sessionErrorChannel,
  sessionMiddleware,
  withSession,
} from './session-middleware.ts';
export {
  DEFAULT_ABSOLUTE_TTL_SECONDS,
  DEFAULT_MAX_BYTES,
  DEFAULT_TTL_SECONDS,
  type SessionFields,
  type SessionPatch,
  type SessionStore,
  type SessionStoreMetrics,
} from './session-store.ts';
export {
  createSessionStore,
  redisOptionsFromConfig,
  SESSION_STORES,
  type SessionStoreFactory,
  type SessionsSection,
  sessionOptionsFromConfig,
} from './session-store-registry.ts';

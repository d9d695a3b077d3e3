import type { ConnectionOptions } from 'node:tls';
import { TgError } from '@tiergate/errors';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { assertSessionSize, emptyFields } from './session-codec.ts';
import {
  DEFAULT_MAX_BYTES,
  DEFAULT_TTL_SECONDS,
  type SessionFields,
  type SessionPatch,
  type SessionStore,
  type SessionStoreMetrics,
} from './session-store.ts';

export interface RedisAddress {
  host: string;
  port: number;
}

/** How to reach Redis: a plain options object, so it can come straight from tiergate.yaml. */
export interface RedisSessionStoreOptions {
  mode: 'standalone' | 'sentinel' | 'cluster';
  /** standalone: `redis://[user:pass@]host:port[/db]` or `rediss://…` for TLS. */
  url?: string;
  /** cluster: some of the cluster's nodes. */
  nodes?: RedisAddress[];
  /** sentinel: the Sentinels and the monitored master's name. */
  sentinels?: RedisAddress[];
  name?: string;
  /** Database number (standalone and Sentinel; Cluster has only 0). */
  db?: number;
  /** ACL user and password (Redis 6+); a password alone is the legacy AUTH. */
  username?: string;
  password?: string;
  /** Password of the Sentinels themselves, when they require one. */
  sentinelPassword?: string;
  /** true for TLS with system CAs, or node:tls options. */
  tls?: boolean | ConnectionOptions;
  /** Prefix of every session key (default `tg:sess:`). */
  keyPrefix?: string;
  ttlSeconds?: number;
  maxBytes?: number;
  /** A command not answered in this time fails as TG_SESSION_STORE_UNAVAILABLE (default 1000 ms). */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
}

type Client = Redis | Cluster;

interface SessionCommands {
  tgSessionPatch(key: string, ttlMs: number, mode: PatchMode, setCount: number, ...rest: string[]): Promise<number>;
  tgSessionTake(key: string, field: string): Promise<string | null>;
}

/** ARGV[2] of the patch script: merge, replace every field, or merge only into an existing session. */
type PatchMode = '0' | '1' | '2';

/**
 * The atomic per-key merge: one EVAL applies HSET/HDEL for only the changed top-level keys and renews
 * the TTL, so two app servers saving different keys of one session at once both keep their write
 * (a GET-modify-SET of the whole value would lose one). Runs on one key, so it is Cluster-safe.
 * KEYS[1] hash; ARGV[1] ttl ms; ARGV[2] '1' = replace all fields, '2' = only if the hash exists;
 * ARGV[3] n; then n field/value pairs, then fields to delete. Returns the field count after the
 * patch, or -1 when mode '2' found no hash and wrote nothing: without that check the HSETs of a save
 * racing a logout's DEL would create the session again, with the keys that save changed.
 */
const PATCH_LUA = `
if ARGV[2] == '1' then redis.call('DEL', KEYS[1])
elseif ARGV[2] == '2' and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  i = i + 1
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return redis.call('HLEN', KEYS[1])
`;

/**
 * HGET + HDEL as one step (Redis 7 has no HGETDEL): two requests that both read the field and then
 * deleted it would both see the value, and a one-time captcha would log in twice.
 */
const TAKE_LUA = `
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then redis.call('HDEL', KEYS[1], ARGV[1]) end
return value
`;

/**
 * Sessions in Redis (standalone, Sentinel or Cluster through ioredis), one HASH per session.
 * Fails fast while Redis is unreachable (no offline queue, a command timeout) with
 * TG_SESSION_STORE_UNAVAILABLE, counting failures in metrics(); ioredis keeps reconnecting, so the
 * store recovers by itself when Redis is back.
 */
export class RedisSessionStore implements SessionStore {
  readonly ttlSeconds: number;
  readonly maxBytes: number;
  readonly client: Client;
  readonly #prefix: string;
  readonly #metrics: SessionStoreMetrics = { failures: 0, corrupt: 0 };

  constructor(options: RedisSessionStoreOptions) {
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#prefix = options.keyPrefix ?? 'tg:sess:';
    this.client = createRedisClient(options);
    // Connection errors surface as failed commands; without a listener ioredis would log each retry.
    this.client.on('error', () => {});
    this.client.defineCommand('tgSessionPatch', { numberOfKeys: 1, lua: PATCH_LUA });
    this.client.defineCommand('tgSessionTake', { numberOfKeys: 1, lua: TAKE_LUA });
  }

  /** Resolves once connected (or rejects with TG_SESSION_STORE_UNAVAILABLE after `timeoutMs`). */
  async ready(timeoutMs = 5_000): Promise<void> {
    if (this.client.status === 'ready') return;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const timer = setTimeout(() => reject(new TgError('TG_SESSION_STORE_UNAVAILABLE', 'Redis not ready')), timeoutMs);
    this.client.once('ready', resolve);
    try {
      await promise;
    } finally {
      clearTimeout(timer);
      this.client.off('ready', resolve);
    }
  }

  async get(id: string): Promise<SessionFields | null> {
    const fields = await this.#run(() => this.client.hgetall(this.#key(id)));
    return Object.keys(fields).length === 0 ? null : Object.assign(emptyFields(), fields);
  }

  async set(id: string, patch: SessionPatch, ttlSeconds = this.ttlSeconds): Promise<boolean> {
    assertSessionSize(patch.set, this.maxBytes);
    const pairs = Object.entries(patch.set).flat();
    const mode: PatchMode = patch.replace ? '1' : patch.ifExists ? '2' : '0';
    const fields = await this.#run(() =>
      this.#commands.tgSessionPatch(this.#key(id), ttlSeconds * 1000, mode, pairs.length / 2, ...pairs, ...patch.delete),
    );
    return fields !== -1;
  }

  async take(id: string, field: string): Promise<string | null> {
    return this.#run(() => this.#commands.tgSessionTake(this.#key(id), field));
  }

  async destroy(id: string): Promise<void> {
    await this.#run(() => this.client.del(this.#key(id)));
  }

  async touch(id: string, ttlSeconds = this.ttlSeconds): Promise<boolean> {
    return (await this.#run(() => this.client.pexpire(this.#key(id), ttlSeconds * 1000))) === 1;
  }

  metrics(): SessionStoreMetrics {
    return { ...this.#metrics };
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  get #commands(): SessionCommands {
    return this.client as unknown as SessionCommands;
  }

  #key(id: string): string {
    return this.#prefix + id;
  }

  async #run<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      throw this.#classify(err);
    }
  }

  #classify(err: unknown): TgError {
    const message = err instanceof Error ? err.message : String(err);
    if (message.startsWith('WRONGTYPE')) {
      this.#metrics.corrupt++;
      return new TgError('TG_SESSION_CORRUPT', 'session key holds a value that is not a hash', { cause: err });
    }
    if (err instanceof TgError) return err;
    // Everything else (refused, reset, timeout, no offline queue, READONLY during a failover, LOADING)
    // means "Redis cannot serve this now"; the app answers 503 and ioredis keeps reconnecting.
    this.#metrics.failures++;
    return new TgError('TG_SESSION_STORE_UNAVAILABLE', 'session store unavailable', { cause: err });
  }
}

/** The ioredis client for the options: fail-fast settings shared by the three modes. */
export function createRedisClient(options: RedisSessionStoreOptions): Client {
  const common: RedisOptions = {
    db: options.db,
    username: options.username,
    password: options.password,
    tls: tlsOption(options.tls),
    // Fail fast: reject commands while disconnected instead of queueing them until Redis returns.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 1_000,
    connectTimeout: options.connectTimeoutMs ?? 2_000,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1_000),
    // After a failover the old master answers READONLY; reconnecting makes the client ask Sentinel again.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  };
  switch (options.mode) {
    case 'standalone':
      return options.url === undefined ? invalid('standalone mode needs url') : new Redis(options.url, withoutUndefined(common));
    case 'sentinel':
      if (!options.sentinels?.length || !options.name) invalid('sentinel mode needs sentinels and name');
      return new Redis({
        ...withoutUndefined(common),
        sentinels: options.sentinels,
        name: options.name,
        sentinelPassword: options.sentinelPassword,
        enableTLSForSentinelMode: options.tls !== undefined && options.tls !== false,
      });
    case 'cluster':
      if (!options.nodes?.length) invalid('cluster mode needs nodes');
      return new Cluster(options.nodes, {
        redisOptions: withoutUndefined(common),
        enableOfflineQueue: false,
        clusterRetryStrategy: (attempt) => Math.min(50 * attempt, 1_000),
      });
    default:
      return invalid(`unknown mode '${String((options as { mode: unknown }).mode)}'`);
  }
}

function tlsOption(tls: boolean | ConnectionOptions | undefined): ConnectionOptions | undefined {
  if (tls === true) return {};
  return tls === false ? undefined : tls;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function invalid(message: string): never {
  throw new TgError('TG_CONFIG_INVALID', `session store: ${message}`);
}

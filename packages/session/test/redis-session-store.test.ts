import { isTgError } from '@tiergate/errors';
import { type RedisServer, startRedis } from '@tiergate/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeSession, RedisSessionStore, type RedisSessionStoreOptions } from '../src/index.ts';

let redis: RedisServer;
const stores: RedisSessionStore[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.[Symbol.asyncDispose]();
});
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
});

async function newStore(options: Partial<RedisSessionStoreOptions> = {}): Promise<RedisSessionStore> {
  const store = new RedisSessionStore({ mode: 'standalone', url: redis.url, ...options });
  stores.push(store);
  await store.ready();
  return store;
}

async function failure(work: Promise<unknown>): Promise<unknown> {
  return work.then(
    () => expect.fail('expected a rejection'),
    (err: unknown) => err,
  );
}

describe('RedisSessionStore', () => {
  it('stores a session as a hash with a TTL and applies patches per key', async () => {
    const store = await newStore({ ttlSeconds: 60, keyPrefix: 'test:' });
    await store.set('s1', { set: encodeSession({ user: 'alice', cart: { a: 1 } }), delete: [] });
    await store.set('s1', { set: encodeSession({ theme: 'dark' }), delete: ['cart'] });
    expect({ ...(await store.get('s1')) }).toEqual({ user: '"alice"', theme: '"dark"' });
    const raw = redis.client();
    try {
      expect(await raw.type('test:s1')).toBe('hash');
      const pttl = await raw.pttl('test:s1');
      expect(pttl).toBeGreaterThan(50_000);
      expect(pttl).toBeLessThanOrEqual(60_000);
      await store.touch('s1', 600);
      expect(await raw.pttl('test:s1')).toBeGreaterThan(500_000);
    } finally {
      raw.disconnect();
    }
    await store.set('s1', { set: encodeSession({ only: 1 }), delete: [], replace: true });
    expect({ ...(await store.get('s1')) }).toEqual({ only: '1' });
    await store.destroy('s1');
    expect(await store.get('s1')).toBeNull();
  });

  it('keeps every key written by concurrent patches from two clients (per-key merge)', async () => {
    const [a, b] = [await newStore(), await newStore()];
    await a.set('race', { set: encodeSession({ user: 'alice' }), delete: [] });
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).set('race', { set: encodeSession({ [`item${i}`]: i }), delete: [] })),
    );
    const fields = await a.get('race');
    expect(Object.keys(fields ?? {})).toHaveLength(41);
  });

  it('rejects oversize patches with TG_SESSION_TOO_LARGE before writing', async () => {
    const store = await newStore({ maxBytes: 100 });
    const err = await failure(store.set('big', { set: encodeSession({ blob: 'x'.repeat(200) }), delete: [] }));
    expect(isTgError(err, 'TG_SESSION_TOO_LARGE')).toBe(true);
    expect(await store.get('big')).toBeNull();
  });

  it('reports a key of another type as TG_SESSION_CORRUPT', async () => {
    const store = await newStore();
    const raw = redis.client();
    await raw.set('tg:sess:str', 'not a hash');
    raw.disconnect();
    const err = await failure(store.get('str'));
    expect(isTgError(err, 'TG_SESSION_CORRUPT')).toBe(true);
    expect(store.metrics().corrupt).toBe(1);
  });

  it('fails fast with TG_SESSION_STORE_UNAVAILABLE while Redis is down and recovers without a restart', async () => {
    const store = await newStore();
    await store.set('o', { set: encodeSession({ n: 1 }), delete: [] });
    await redis.stop();
    try {
      const err = await failure(store.get('o'));
      expect(isTgError(err, 'TG_SESSION_STORE_UNAVAILABLE')).toBe(true);
      expect((err as Error).cause).toBeInstanceOf(Error);
      expect(store.metrics().failures).toBe(1);
    } finally {
      await redis.restart();
    }
    await store.ready();
    await store.set('o', { set: encodeSession({ n: 2 }), delete: [] });
    expect({ ...(await store.get('o')) }).toEqual({ n: '2' });
  });

  it('rejects incomplete options with TG_CONFIG_INVALID', () => {
    for (const options of [{ mode: 'standalone' }, { mode: 'sentinel', sentinels: [] }, { mode: 'cluster' }, { mode: 'bogus' }]) {
      expect(() => new RedisSessionStore(options as RedisSessionStoreOptions)).toThrow(
        expect.objectContaining({ code: 'TG_CONFIG_INVALID' }),
      );
    }
  });
});

describe('RedisSessionStore with ACL users', () => {
  it('authenticates with username and password, and a wrong password is TG_SESSION_STORE_UNAVAILABLE', async () => {
    // An ACL user limited to the session keys; the default user is disabled.
    await using acl = await startRedis({ args: ['--user', 'app', 'on', '>app-secret', '~tg:sess:*', '+@all', '--user', 'default', 'off'] });
    const good = new RedisSessionStore({ mode: 'standalone', url: acl.url, username: 'app', password: 'app-secret' });
    const bad = new RedisSessionStore({ mode: 'standalone', url: acl.url, username: 'app', password: 'wrong', connectTimeoutMs: 500 });
    try {
      await good.ready();
      await good.set('acl', { set: encodeSession({ user: 'alice' }), delete: [] });
      expect({ ...(await good.get('acl')) }).toEqual({ user: '"alice"' });
      const err = await failure(bad.get('acl'));
      expect(isTgError(err, 'TG_SESSION_STORE_UNAVAILABLE')).toBe(true);
      expect(bad.metrics().failures).toBe(1);
    } finally {
      await good.close();
      await bad.close();
    }
  });
});

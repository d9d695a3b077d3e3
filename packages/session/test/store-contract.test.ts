import { validateConfig } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import { type RedisServer, startRedis } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSessionStore,
  encodeSession,
  MemoryStore,
  RedisSessionStore,
  SESSION_STORES,
  type SessionStore,
  sessionMiddleware,
  sessionOptionsFromConfig,
} from '../src/index.ts';
import { SECRET_A } from './helpers.ts';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.[Symbol.asyncDispose]();
});

/** A `sessions` section as tiergate.yaml's schema produces it. */
function sessionsSection(store: 'redis' | 'memory', prefix: string) {
  const config = validateConfig({
    version: 1,
    sessions: { store, redis: { url: redis.url }, key_prefix: prefix, ttl: '10m', max_size: '1k', secrets: [SECRET_A] },
  });
  return config.sessions!;
}

async function open(name: 'redis' | 'memory', prefix: string): Promise<SessionStore & AsyncDisposable> {
  const store = createSessionStore(sessionsSection(name, prefix));
  if (store instanceof RedisSessionStore) await store.ready();
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() });
}

// The same contract for every registered store.
describe.each(Object.keys(SESSION_STORES) as ('redis' | 'memory')[])('%s store contract', (name) => {
  let n = 0;
  const id = () => `${name}-${++n}`;

  it('takes ttl and max size from the config', async () => {
    await using store = await open(name, `${name}-a:`);
    expect([store.ttlSeconds, store.maxBytes]).toEqual([600, 1024]);
  });

  it('merges patches per key, replaces, and forgets a session whose keys are all deleted', async () => {
    await using store = await open(name, `${name}-b:`);
    const sid = id();
    expect(await store.get(sid)).toBeNull();
    await store.set(sid, { set: encodeSession({ a: 1, b: 2 }), delete: [] });
    await store.set(sid, { set: encodeSession({ c: 3 }), delete: ['a'] });
    expect({ ...(await store.get(sid)) }).toEqual({ b: '2', c: '3' });
    await store.set(sid, { set: encodeSession({ d: 4 }), delete: [], replace: true });
    expect({ ...(await store.get(sid)) }).toEqual({ d: '4' });
    await store.set(sid, { set: {}, delete: ['d'] });
    expect(await store.get(sid)).toBeNull();
  });

  it('destroys, touches absent sessions harmlessly, and refuses oversize patches', async () => {
    await using store = await open(name, `${name}-c:`);
    const sid = id();
    await store.set(sid, { set: encodeSession({ a: 1 }), delete: [] });
    await store.destroy(sid);
    await store.destroy(sid);
    await store.touch(sid);
    expect(await store.get(sid)).toBeNull();
    const err = await store.set(sid, { set: encodeSession({ a: 'x'.repeat(2000) }), delete: [] }).catch((e: unknown) => e);
    expect(isTgError(err, 'TG_SESSION_TOO_LARGE')).toBe(true);
    expect(store.metrics()).toEqual({ failures: 0, corrupt: 0 });
  });

  it('builds middleware options from the config', async () => {
    await using store = await open(name, `${name}-d:`);
    const options = sessionOptionsFromConfig(sessionsSection(name, 'x'), store);
    expect(options).toMatchObject({
      secrets: [SECRET_A],
      cookieName: 'tg.sid',
      rolling: true,
      cookie: { httpOnly: true, sameSite: 'lax' },
    });
    expect(sessionMiddleware(options).cookieName).toBe('tg.sid');
  });
});

describe('MemoryStore', () => {
  it('expires sessions by its clock and renews them on touch', async () => {
    let now = 0;
    const store = new MemoryStore({ ttlSeconds: 10, now: () => now });
    await store.set('m', { set: encodeSession({ a: 1 }), delete: [] });
    now = 9_000;
    await store.touch('m');
    now = 18_000;
    expect(await store.get('m')).not.toBeNull();
    now = 19_000;
    expect(await store.get('m')).toBeNull();
  });
});

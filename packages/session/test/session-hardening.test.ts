import { type RedisServer, startRedis } from '@tiergate/testkit';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CREATED_FIELD,
  encodeSession,
  type HeaderSink,
  MemoryStore,
  RedisSessionStore,
  type SessionOptions,
  type SessionStore,
  sessionMiddleware,
  signSessionId,
  withSession,
} from '../src/index.ts';
import { cookiePair, SECRET_A, startHttp } from './helpers.ts';

let redis: RedisServer;
/** Two clients (two connections), as two app servers have: their commands really interleave in Redis. */
let appA: RedisSessionStore;
let appB: RedisSessionStore;

beforeAll(async () => {
  redis = await startRedis();
  appA = new RedisSessionStore({ mode: 'standalone', url: redis.url, ttlSeconds: 600, keyPrefix: 'h:' });
  appB = new RedisSessionStore({ mode: 'standalone', url: redis.url, ttlSeconds: 600, keyPrefix: 'h:' });
  await Promise.all([appA.ready(), appB.ready()]);
});
afterAll(async () => {
  await appA?.close();
  await appB?.close();
  await redis?.[Symbol.asyncDispose]();
});

/** A response stand-in that records the Set-Cookie lines a save sends. */
function sink(): HeaderSink & { cookies(): string[] } {
  const headers = new Map<string, number | string | string[]>();
  return {
    getHeader: (name) => headers.get(name),
    setHeader: (name, value) => headers.set(name, value),
    cookies: () => [headers.get('set-cookie') ?? []].flat().map(String),
  };
}

function manager(store: SessionStore, options: Partial<SessionOptions> = {}) {
  return sessionMiddleware({ store, secrets: [SECRET_A], cookie: { secure: false }, ...options });
}

/** A stored session with `user` set; returns its Cookie header. */
async function stored(store: SessionStore): Promise<{ id: string; cookie: string }> {
  const session = await manager(store).load({ headers: {} }, sink());
  session.data.user = 'alice';
  await session.save();
  return { id: session.id, cookie: `tg.sid=${signSessionId(session.id, SECRET_A)}` };
}

describe('a save racing a logout (real Redis, two clients)', () => {
  it('does not bring back a session destroyed after it was loaded, and sends no cookie for it', async () => {
    const { id, cookie } = await stored(appA);
    const lateRes = sink();
    const late = await manager(appA).load({ headers: { cookie } }, lateRes);
    const touchRes = sink();
    const touching = await manager(appA).load({ headers: { cookie } }, touchRes);
    const logout = await manager(appB).load({ headers: { cookie } }, sink());
    logout.destroy();
    await logout.save();
    // Requests that loaded the session before the logout save after it: a change, and a rolling touch.
    late.data['cart:apple'] = 1;
    await late.save();
    await touching.save();
    expect(await appA.get(id)).toBeNull();
    // No cookie either: it would put the logged-out id back into the browser (or, after a regenerate
    // elsewhere, replace the new id with the dead one).
    expect([lateRes.cookies(), touchRes.cookies()]).toEqual([[], []]);
  });

  it('never recreates the session in 200 rounds of concurrent patch + destroy', async () => {
    let patchedFirst = 0;
    for (let round = 0; round < 200; round++) {
      const { id, cookie } = await stored(appA);
      const [writer, logout] = await Promise.all([
        manager(appA).load({ headers: { cookie } }, sink()),
        manager(appB).load({ headers: { cookie } }, sink()),
      ]);
      writer.data[`cart:item-${round}`] = round;
      logout.destroy();
      // Issued in turn first, on two connections: both orders reach Redis.
      await Promise.all(round % 2 === 0 ? [writer.save(), logout.save()] : [logout.save(), writer.save()]);
      expect(await appA.get(id), `round ${round}`).toBeNull();
      if (!writer.isNew) patchedFirst++;
    }
    // Both orders happened: the patch before the DEL (kept, then deleted) and after it (not applied).
    expect(patchedFirst).toBeGreaterThan(0);
    expect(patchedFirst).toBeLessThan(200);
  });

  it('the store: a patch with ifExists writes nothing to an absent session, a plain one still creates', async () => {
    expect(await appA.set('absent', { set: encodeSession({ a: 1 }), delete: [], ifExists: true })).toBe(false);
    expect(await appA.get('absent')).toBeNull();
    expect(await appA.set('absent', { set: encodeSession({ a: 1 }), delete: [] })).toBe(true);
    expect(await appA.set('absent', { set: encodeSession({ b: 2 }), delete: [], ifExists: true })).toBe(true);
    expect({ ...(await appA.get('absent')) }).toEqual({ a: '1', b: '2' });
  });
});

describe.each([
  ['redis', () => [appA, appB] as SessionStore[]],
  ['memory', () => [new MemoryStore()] as SessionStore[]],
])('take on the %s store', (_name, stores) => {
  it('hands one field to exactly one of 25 concurrent takers', async () => {
    const all = stores();
    for (let round = 0; round < 10; round++) {
      const sid = `take-${round}`;
      await all[0]!.set(sid, { set: encodeSession({ captcha: 'ABC234', user: 'u' }), delete: [] });
      const got = await Promise.all(Array.from({ length: 25 }, (_, i) => all[i % all.length]!.take(sid, 'captcha')));
      expect(got.filter((v) => v !== null)).toEqual(['"ABC234"']);
      expect({ ...(await all[0]!.get(sid)) }).toEqual({ user: '"u"' });
    }
    expect(await all[0]!.take('never-stored', 'captcha')).toBeNull();
  });
});

describe('absolute lifetime', () => {
  it('cuts every renewal to the deadline, so Redis drops a rolling session at it, and refuses it after', async () => {
    let now = 1_000_000;
    const sessions = manager(appA, { absoluteTtlSeconds: 100, now: () => now });
    const first = sink();
    const session = await sessions.load({ headers: {} }, first);
    session.data.user = 'alice';
    await session.save();
    const cookie = cookiePair(first.cookies(), 'tg.sid')!;
    expect(first.cookies()[0]).toContain('Max-Age=100');
    const raw = redis.client();
    try {
      expect(await raw.pttl(`h:${session.id}`)).toBeLessThanOrEqual(100_000);
      // 90 s later a rolling touch renews to what is left (10 s), not to the store's 600 s.
      now += 90_000;
      const res = sink();
      const later = await sessions.load({ headers: { cookie } }, res);
      expect(later.data).toEqual({ user: 'alice' });
      await later.save();
      expect(res.cookies()[0]).toContain('Max-Age=10');
      expect(await raw.pttl(`h:${session.id}`)).toBeLessThanOrEqual(10_000);
      // At the deadline the session is over even if the store still had it (app clocks ahead of Redis).
      now += 10_000;
      const over = await sessions.load({ headers: { cookie } }, sink());
      expect([over.isNew, over.data]).toEqual([true, {}]);
    } finally {
      raw.disconnect();
    }
  });

  it('gives a session stored without a creation time one at its next save', async () => {
    const sessions = manager(appA);
    const legacy = 'L'.repeat(43);
    await appA.set(legacy, { set: encodeSession({ user: 'bob' }), delete: [] });
    const cookie = `tg.sid=${signSessionId(legacy, SECRET_A)}`;
    const session = await sessions.load({ headers: { cookie } }, sink());
    expect(session.data).toEqual({ user: 'bob' });
    await session.save();
    expect(Number((await appA.get(session.id))?.[CREATED_FIELD])).toBeGreaterThan(0);
  });
});

describe('MemoryStore sweep', () => {
  it('drops sessions nobody reads again once their TTL and one sweep interval have passed', async () => {
    let now = 0;
    const store = new MemoryStore({ ttlSeconds: 10, sweepIntervalMs: 5_000, now: () => now });
    for (let i = 0; i < 500; i++) await store.set(`gone-${i}`, { set: encodeSession({ a: i }), delete: [] });
    now = 9_000;
    await store.set('kept', { set: encodeSession({ a: 1 }), delete: [] });
    expect(store.size).toBe(501);
    now = 15_000;
    await store.get('kept');
    expect(store.size).toBe(1);
  });
});

describe('secure by default', () => {
  it('keeps Secure when the cookie options leave it unset (an unset sessions.cookie.secure)', async () => {
    const sessions = sessionMiddleware({ store: appA, secrets: [SECRET_A], cookie: { secure: undefined, sameSite: 'strict' } });
    await using http = await startHttp(
      withSession(sessions, (_req, session) => {
        session.data.x = 1;
        return { status: 200 };
      }),
    );
    const res = await request(http.url);
    await res.body.dump();
    expect(String(res.headers['set-cookie'])).toMatch(/; Secure; SameSite=Strict$/);
  });
});

import { type RedisServer, startRedis } from '@tiergate/testkit';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CREATED_FIELD,
  RedisSessionStore,
  type SessionOptions,
  sessionErrorChannel,
  sessionMiddleware,
  signSessionId,
  withSession,
} from '../src/index.ts';
import { cookiePair, SECRET_A, SECRET_B, startHttp } from './helpers.ts';

let redis: RedisServer;
let store: RedisSessionStore;

beforeAll(async () => {
  redis = await startRedis();
  store = new RedisSessionStore({ mode: 'standalone', url: redis.url, ttlSeconds: 600, maxBytes: 1024 });
  await store.ready();
});
afterAll(async () => {
  await store?.close();
  await redis?.[Symbol.asyncDispose]();
});

/**
 * A tiny app: GET shows the session, POST /set?k=v sets a key, /login regenerates, /logout destroys,
 * /big stores more than maxBytes.
 */
function app(options: Partial<SessionOptions> = {}) {
  const sessions = sessionMiddleware({ store, secrets: [SECRET_A], cookie: { secure: false }, ...options });
  return startHttp(
    withSession(sessions, (req, session) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/set') for (const [k, v] of url.searchParams) session.data[k] = v;
      if (url.pathname === '/login') session.regenerate();
      if (url.pathname === '/logout') session.destroy();
      if (url.pathname === '/big') session.data.blob = 'x'.repeat(2000);
      return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: session.id, data: session.data }) };
    }),
  );
}

async function call(url: string, cookie?: string) {
  const res = await request(url, { headers: cookie ? { cookie } : {} });
  const body = (await res.body.json()) as { id: string; data: Record<string, unknown> };
  return { status: res.statusCode, body, setCookie: res.headers['set-cookie'], cookie: cookiePair(res.headers['set-cookie'], 'tg.sid') };
}

describe('sessionMiddleware over real HTTP and Redis', () => {
  it('issues a signed cookie with the configured attributes only once there is data', async () => {
    await using http = await app({ cookie: { secure: true, sameSite: 'strict', domain: 'example.test', path: '/app' } });
    const empty = await call(`${http.url}/`);
    expect(empty.setCookie).toBeUndefined();
    const first = await call(`${http.url}/set?user=alice`);
    const line = String(first.setCookie);
    expect(line).toMatch(/^tg\.sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}; /);
    for (const attribute of ['Max-Age=600', 'Domain=example.test', 'Path=/app', 'HttpOnly', 'Secure', 'SameSite=Strict']) {
      expect(line).toContain(attribute);
    }
    const again = await call(`${http.url}/`, first.cookie);
    expect(again.body).toEqual({ id: first.body.id, data: { user: 'alice' } });
    // Rolling: an unchanged session still renews the cookie.
    expect(again.cookie).toBe(first.cookie);
  });

  it('gives a tampered or unknown cookie a new empty session', async () => {
    await using http = await app();
    const first = await call(`${http.url}/set?user=alice`);
    const [id, mac] = first.cookie!.slice('tg.sid='.length).split('.') as [string, string];
    const flipped = `${id.slice(0, -1)}${id.endsWith('A') ? 'B' : 'A'}`;
    for (const cookie of [`tg.sid=${flipped}.${mac}`, `tg.sid=${id}.${mac.slice(0, -1)}x`, `tg.sid=${id}`, 'tg.sid=garbage']) {
      const res = await call(`${http.url}/`, cookie);
      expect(res.body.data).toEqual({});
      expect(res.body.id).not.toBe(id);
    }
    // A well-signed id the store does not know is not adopted either (no fixation by chosen id).
    const planted = 'P'.repeat(43);
    const res = await call(`${http.url}/set?x=1`, `tg.sid=${signSessionId(planted, SECRET_A)}`);
    expect(res.body.id).not.toBe(planted);
  });

  it('accepts cookies signed by a rotated-out secret and signs new ones with the newest', async () => {
    await using oldApp = await app({ secrets: [SECRET_A] });
    await using newApp = await app({ secrets: [SECRET_B, SECRET_A] });
    const issued = await call(`${oldApp.url}/set?user=alice`);
    const read = await call(`${newApp.url}/`, issued.cookie);
    expect(read.body.data).toEqual({ user: 'alice' });
    expect(read.cookie).toBe(`tg.sid=${signSessionId(issued.body.id, SECRET_B)}`);
    // A secret dropped from the list no longer verifies.
    await using rotatedOut = await app({ secrets: [SECRET_B] });
    expect((await call(`${rotatedOut.url}/`, issued.cookie)).body.data).toEqual({});
  });

  it('regenerate keeps the data under a new id and deletes the old key; destroy clears it all', async () => {
    await using http = await app();
    const before = await call(`${http.url}/set?captcha=1234`);
    const login = await call(`${http.url}/login`, before.cookie);
    expect(login.body.id).not.toBe(before.body.id);
    expect(await store.get(before.body.id)).toBeNull();
    expect((await call(`${http.url}/`, before.cookie)).body.data).toEqual({});
    expect((await call(`${http.url}/`, login.cookie)).body.data).toEqual({ captcha: '1234' });
    const logout = await call(`${http.url}/logout`, login.cookie);
    expect(String(logout.setCookie)).toContain('Max-Age=0');
    expect(await store.get(login.body.id)).toBeNull();
  });

  it('answers 413 for an oversize session and keeps the stored one', async () => {
    await using http = await app();
    const first = await call(`${http.url}/set?user=alice`);
    const res = await request(`${http.url}/big`, { headers: { cookie: first.cookie! } });
    expect(res.statusCode).toBe(413);
    expect(await res.body.text()).toBe('TG_SESSION_TOO_LARGE\n');
    expect(res.headers['set-cookie']).toBeUndefined();
    expect({ ...(await store.get(first.body.id)) }).toEqual({ user: '"alice"', [CREATED_FIELD]: expect.any(String) });
  });

  it('answers 500 TG_SESSION_CORRUPT for a corrupt hash field, without a stack trace', async () => {
    await using http = await app();
    const first = await call(`${http.url}/set?user=alice`);
    const raw = redis.client();
    await raw.hset(`tg:sess:${first.body.id}`, 'user', '{broken');
    raw.disconnect();
    const res = await request(`${http.url}/`, { headers: { cookie: first.cookie! } });
    expect(res.statusCode).toBe(500);
    expect(await res.body.text()).toBe('TG_SESSION_CORRUPT\n');
  });

  it('turns a handler bug into a bare 500 and publishes it on the diagnostics channel', async () => {
    const sessions = sessionMiddleware({ store, secrets: [SECRET_A] });
    await using http = await startHttp(
      withSession(sessions, () => {
        throw new Error('secret internals at /srv/app.ts:12');
      }),
    );
    const seen: unknown[] = [];
    const listener = (message: unknown) => seen.push((message as { error: unknown }).error);
    sessionErrorChannel.subscribe(listener);
    try {
      const res = await request(http.url);
      expect(res.statusCode).toBe(500);
      expect(await res.body.text()).toBe('internal error\n');
    } finally {
      sessionErrorChannel.unsubscribe(listener);
    }
    expect(seen).toEqual([expect.objectContaining({ message: 'secret internals at /srv/app.ts:12' })]);
  });

  it('requires signing secrets of at least 16 characters', () => {
    expect(() => sessionMiddleware({ store, secrets: [] })).toThrow(expect.objectContaining({ code: 'TG_CONFIG_INVALID' }));
    expect(() => sessionMiddleware({ store, secrets: ['short'] })).toThrow(expect.objectContaining({ code: 'TG_CONFIG_INVALID' }));
  });
});

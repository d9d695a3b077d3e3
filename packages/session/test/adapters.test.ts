import { type RedisServer, startRedis } from '@tiergate/testkit';
import express from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExpressSessionStore, fastifySession, getSession, RedisSessionStore } from '../src/index.ts';
import { cookiePair, listen, SECRET_A } from './helpers.ts';

let redis: RedisServer;
let store: RedisSessionStore;

beforeAll(async () => {
  redis = await startRedis();
  store = new RedisSessionStore({ mode: 'standalone', url: redis.url, keyPrefix: 'adapt:' });
  await store.ready();
});
afterAll(async () => {
  await store?.close();
  await redis?.[Symbol.asyncDispose]();
});

declare module 'express-session' {
  interface SessionData {
    views: number;
  }
}

describe('express-session Store', () => {
  it('persists sessions in Redis through a real express app, with the cookie maxAge as TTL', async () => {
    const app = express();
    app.use(
      session({
        store: createExpressSessionStore(session.Store, store),
        secret: SECRET_A,
        resave: false,
        saveUninitialized: false,
        cookie: { maxAge: 120_000 },
      }),
    );
    app.get('/count', (req, res) => {
      req.session.views = (req.session.views ?? 0) + 1;
      res.json({ views: req.session.views });
    });
    app.post('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
    await using http = await listen(app.listen(0, '127.0.0.1'));

    const first = await request(`${http.url}/count`);
    expect(await first.body.json()).toEqual({ views: 1 });
    const cookie = cookiePair(first.headers['set-cookie'], 'connect.sid')!;
    const second = await request(`${http.url}/count`, { headers: { cookie } });
    expect(await second.body.json()).toEqual({ views: 2 });

    const raw = redis.client();
    try {
      const [key] = await raw.keys('adapt:*');
      expect(await raw.hget(key!, 'views')).toBe('2');
      expect(await raw.pttl(key!)).toBeGreaterThan(100_000);
      expect(await raw.pttl(key!)).toBeLessThanOrEqual(120_000);
      const logout = await request(`${http.url}/logout`, { method: 'POST', headers: { cookie } });
      expect(await logout.body.json()).toEqual({ ok: true });
      expect(await raw.exists(key!)).toBe(0);
    } finally {
      raw.disconnect();
    }
  });
});

describe('Fastify plugin', () => {
  it('loads and saves the session around a real Fastify route, and answers 503 when Redis is down', async () => {
    const app = Fastify();
    await app.register(fastifySession({ store, secrets: [SECRET_A], cookie: { secure: false } }));
    app.get('/cart/:item', async (req) => {
      const s = getSession(req);
      const { item } = req.params as { item: string };
      s.data[`cart:${item}`] = 1;
      return { items: Object.keys(s.data).sort() };
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = app.server.address() as { port: number };
      const url = `http://127.0.0.1:${port}`;
      const first = await request(`${url}/cart/book`);
      expect(await first.body.json()).toEqual({ items: ['cart:book'] });
      const cookie = cookiePair(first.headers['set-cookie'], 'tg.sid')!;
      expect(String(first.headers['set-cookie'])).toContain('HttpOnly');
      const second = await request(`${url}/cart/pen`, { headers: { cookie } });
      expect(await second.body.json()).toEqual({ items: ['cart:book', 'cart:pen'] });

      await redis.stop();
      try {
        const down = await request(`${url}/cart/ink`, { headers: { cookie } });
        expect(down.statusCode).toBe(503);
        const body = await down.body.text();
        expect(body).toContain('session store unavailable');
        expect(body).not.toContain(' at ');
      } finally {
        await redis.restart();
      }
    } finally {
      await app.close();
    }
  });
});

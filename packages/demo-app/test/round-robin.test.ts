import { MemoryStore, RedisSessionStore, type SessionStore } from '@tiergate/session';
import { startRedis } from '@tiergate/testkit';
import { expect, it } from 'vitest';
import { startDemoApp } from '../src/index.ts';
import { Browser, roundRobin } from './helpers.ts';

/** One user's visit, each request to the next server in turn: captcha → login → add to cart → read cart. */
async function visit(next: () => string, item: string) {
  const browser = new Browser();
  const captcha = await browser.call(`${next()}/captcha`);
  const login = await browser.call(`${next()}/login`, { json: { user: 'alice', password: 'wonderland', captcha: captcha.body?.code } });
  const add = await browser.call(`${next()}/cart`, { json: { item, qty: 2 } });
  const cart = await browser.call(`${next()}/cart`);
  const servedBy = [captcha, login, add, cart].map((r) => r.headers['x-instance-id']);
  return { login, cart, servedBy };
}

async function twoInstances(stores: [SessionStore, SessionStore]) {
  const a = await startDemoApp({ instanceId: 'A', store: stores[0], demo: true });
  const b = await startDemoApp({ instanceId: 'B', store: stores[1], demo: true });
  return {
    next: roundRobin([a.url, b.url]),
    [Symbol.asyncDispose]: async () => {
      await a.close();
      await b.close();
    },
  };
}

it('with sessions in one Redis, captcha on A and login on B succeed 100 times out of 100', async () => {
  await using redis = await startRedis();
  const stores: [RedisSessionStore, RedisSessionStore] = [
    new RedisSessionStore({ mode: 'standalone', url: redis.url }),
    new RedisSessionStore({ mode: 'standalone', url: redis.url }),
  ];
  try {
    await Promise.all(stores.map((s) => s.ready()));
    await using apps = await twoInstances(stores);
    for (let i = 0; i < 100; i++) {
      const { login, cart, servedBy } = await visit(apps.next, `book-${i}`);
      expect(servedBy).toEqual(['A', 'B', 'A', 'B']);
      expect(login.body).toEqual({ user: 'alice' });
      expect(cart.body).toEqual({ user: 'alice', items: { [`book-${i}`]: 2 } });
    }
  } finally {
    for (const store of stores) await store.close();
  }
});

it('with one MemoryStore per instance (the bug), the login on B is rejected: the captcha lives on A', async () => {
  await using apps = await twoInstances([new MemoryStore(), new MemoryStore()]);
  for (let i = 0; i < 10; i++) {
    const { login, cart, servedBy } = await visit(apps.next, 'book');
    expect(servedBy).toEqual(['A', 'B', 'A', 'B']);
    expect(login.status).toBe(401);
    expect(login.body?.error).toBe('session-unknown');
    expect(cart.body).toEqual({ user: null, items: {} });
  }
});

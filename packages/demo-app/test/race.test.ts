import { RedisSessionStore } from '@tiergate/session';
import { startRedis } from '@tiergate/testkit';
import { expect, it } from 'vitest';
import { startDemoApp } from '../src/index.ts';
import { Browser, roundRobin } from './helpers.ts';

it('keeps all 50 items added in parallel to one session through two instances', async () => {
  await using redis = await startRedis();
  const stores = [
    new RedisSessionStore({ mode: 'standalone', url: redis.url }),
    new RedisSessionStore({ mode: 'standalone', url: redis.url }),
  ];
  try {
    await Promise.all(stores.map((s) => s.ready()));
    await using a = await startDemoApp({ instanceId: 'A', store: stores[0]!, demo: true });
    await using b = await startDemoApp({ instanceId: 'B', store: stores[1]!, demo: true });
    const next = roundRobin([a.url, b.url]);
    const browser = new Browser();
    const captcha = await browser.call(`${next()}/captcha`);
    const login = await browser.call(`${next()}/login`, { json: { user: 'bob', password: 'builder', captcha: captcha.body?.code } });
    expect(login.status).toBe(200);

    const items = Array.from({ length: 50 }, (_, i) => `item-${i}`);
    const results = await Promise.all(items.map((item) => browser.call(`${next()}/cart`, { json: { item, qty: 1 } })));
    expect(results.map((r) => r.status)).toEqual(items.map(() => 200));
    expect(new Set(results.map((r) => r.headers['x-instance-id']))).toEqual(new Set(['A', 'B']));

    const cart = await browser.call(`${next()}/cart`);
    expect(cart.body?.user).toBe('bob');
    expect(Object.keys(cart.body?.items as object).sort()).toEqual([...items].sort());
  } finally {
    for (const store of stores) await store.close();
  }
});

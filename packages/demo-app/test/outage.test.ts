import { RedisSessionStore } from '@tiergate/session';
import { startRedis } from '@tiergate/testkit';
import { expect, it } from 'vitest';
import { startDemoApp } from '../src/index.ts';
import { Browser } from './helpers.ts';

it('answers 503 with a short body while Redis is down, counts it, and recovers without a restart', async () => {
  await using redis = await startRedis();
  const store = new RedisSessionStore({ mode: 'standalone', url: redis.url });
  try {
    await store.ready();
    await using app = await startDemoApp({ instanceId: 'A', store, demo: true });
    const browser = new Browser();
    expect((await browser.call(`${app.url}/captcha`)).status).toBe(200);

    await redis.stop();
    const down = await browser.call(`${app.url}/captcha`);
    expect(down.status).toBe(503);
    expect(down.text).toBe('session store unavailable\n');
    expect(down.headers['set-cookie']).toBeUndefined();
    expect(store.metrics().failures).toBe(1);
    // Liveness does not depend on Redis.
    expect((await browser.call(`${app.url}/healthz`)).status).toBe(200);

    await redis.restart();
    await store.ready();
    const captcha = await browser.call(`${app.url}/captcha`);
    expect(captcha.status).toBe(200);
    const login = await browser.call(`${app.url}/login`, { json: { user: 'alice', password: 'wonderland', captcha: captcha.body?.code } });
    expect(login.body).toEqual({ user: 'alice' });
  } finally {
    await store.close();
  }
});

import { MemoryStore, RedisSessionStore } from '@tiergate/session';
import { startRedis } from '@tiergate/testkit';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { startDemoApp } from '../src/index.ts';
import { Browser, roundRobin } from './helpers.ts';

const ALICE = { user: 'alice', password: 'wonderland' };

describe('one captcha, many parallel logins (real Redis, two instances)', () => {
  it('exactly one of 20 parallel logins with one captcha succeeds, in each of 10 rounds', async () => {
    await using redis = await startRedis();
    const stores = [0, 1].map(() => new RedisSessionStore({ mode: 'standalone', url: redis.url }));
    try {
      await Promise.all(stores.map((s) => s.ready()));
      await using a = await startDemoApp({ instanceId: 'A', store: stores[0]!, demo: true });
      await using b = await startDemoApp({ instanceId: 'B', store: stores[1]!, demo: true });
      const next = roundRobin([a.url, b.url]);
      for (let round = 0; round < 10; round++) {
        const browser = new Browser();
        const captcha = await browser.call(`${next()}/captcha`);
        const cookie = `tg.sid=${browser.cookies.get('tg.sid')}`;
        // The same cookie and captcha 20 times at once, over separate connections to both instances.
        const logins = await Promise.all(
          Array.from({ length: 20 }, async () => {
            const res = await request(`${next()}/login`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', cookie },
              body: JSON.stringify({ ...ALICE, captcha: captcha.body?.code }),
            });
            return { status: res.statusCode, body: (await res.body.json()) as { error?: string } };
          }),
        );
        expect(
          logins.filter((l) => l.status === 200),
          `round ${round}`,
        ).toHaveLength(1);
        // The others find the captcha taken, or (after the winner's regenerate deleted the old id) no session.
        for (const l of logins.filter((l) => l.status !== 200)) {
          expect(['401 captcha', '401 session-unknown'], `round ${round}`).toContain(`${l.status} ${l.body.error}`);
        }
      }
    } finally {
      for (const store of stores) await store.close();
    }
  });
});

describe('demo mode', () => {
  it('is off by default: no built-in users, and the captcha only as an image', async () => {
    await using app = await startDemoApp({ instanceId: 'A', store: new MemoryStore(), randomInt: () => 0 });
    const browser = new Browser();
    const captcha = await browser.call(`${app.url}/captcha`);
    expect([captcha.status, captcha.headers['content-type'], captcha.body]).toEqual([200, 'image/svg+xml', undefined]);
    const login = await browser.call(`${app.url}/login`, { json: { ...ALICE, captcha: 'AAAAAA' } });
    expect([login.status, login.body?.error]).toEqual([401, 'credentials']);
  });

  it('takes users given explicitly also without demo mode', async () => {
    await using app = await startDemoApp({ instanceId: 'A', store: new MemoryStore(), randomInt: () => 0, users: { carol: 'c-pass' } });
    const browser = new Browser();
    await browser.call(`${app.url}/captcha`);
    const login = await browser.call(`${app.url}/login`, { json: { user: 'carol', password: 'c-pass', captcha: 'AAAAAA' } });
    expect(login.body).toEqual({ user: 'carol' });
  });
});

describe('login throttling', () => {
  it('refuses a user after 5 failed logins with 429 and Retry-After until the window ends, even with the right password', async () => {
    let now = 0;
    await using app = await startDemoApp({
      instanceId: 'A',
      store: new MemoryStore(),
      randomInt: () => 0,
      demo: true,
      loginThrottle: { now: () => now },
    });
    const browser = new Browser();
    const attempt = async (user: string, password: string) => {
      await browser.call(`${app.url}/captcha`);
      return browser.call(`${app.url}/login`, { json: { user, password, captcha: 'AAAAAA' } });
    };
    for (let i = 0; i < 5; i++) expect((await attempt('alice', `guess-${i}`)).status).toBe(401);
    const refused = await attempt('alice', 'wonderland');
    expect([refused.status, refused.body?.error, refused.headers['retry-after']]).toEqual([429, 'throttled', '300']);
    // Another user from the same address is not locked out by alice's failures (5 < 20 per address).
    expect((await attempt('bob', 'builder')).body).toEqual({ user: 'bob' });
    now += 300_000;
    expect((await attempt('alice', 'wonderland')).body).toEqual({ user: 'alice' });
  });

  it('refuses an address after 20 failed logins over any user names', async () => {
    await using app = await startDemoApp({ instanceId: 'A', store: new MemoryStore(), randomInt: () => 0, demo: true });
    const browser = new Browser();
    for (let i = 0; i < 20; i++) {
      await browser.call(`${app.url}/captcha`);
      expect((await browser.call(`${app.url}/login`, { json: { user: `user-${i}`, password: 'x', captcha: 'AAAAAA' } })).status).toBe(401);
    }
    await browser.call(`${app.url}/captcha`);
    expect((await browser.call(`${app.url}/login`, { json: { ...ALICE, captcha: 'AAAAAA' } })).status).toBe(429);
  });
});

describe('a login whose session cookie did not come back', () => {
  it('says the Secure cookie did not come back, not that the captcha is wrong', async () => {
    // Secure, as behind a plain-HTTP listener that is not loopback (examples/classic-lvs-dr.yaml's port 80).
    await using app = await startDemoApp({ instanceId: 'A', store: new MemoryStore(), demo: true, session: { cookie: { secure: true } } });
    const captcha = await new Browser().call(`${app.url}/captcha`);
    expect(String(captcha.headers['set-cookie'])).toContain('; Secure');
    // A client on http:// keeps the Secure cookie for HTTPS: the login arrives without it.
    const login = await new Browser().call(`${app.url}/login`, { json: { ...ALICE, captcha: captcha.body?.code } });
    expect([login.status, login.body?.error]).toEqual([401, 'session-cookie']);
    expect(login.body?.message).toMatch(/^the session cookie did not come back with this login.*Secure.*https:\/\//);
    const form = await request(`${app.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `user=alice&password=wonderland&captcha=${captcha.body?.code}`,
    });
    expect(form.statusCode).toBe(401);
    expect(await form.body.text()).toMatch(/^the session cookie did not come back/);
  });

  it('is Secure by default off loopback and not on it (startDemoApp knows its listener)', async () => {
    await using loopback = await startDemoApp({ instanceId: 'A', store: new MemoryStore(), host: '127.0.0.1' });
    const res = await new Browser().call(`${loopback.url}/captcha`);
    expect(String(res.headers['set-cookie'])).not.toContain('Secure');
    await using any = await startDemoApp({ instanceId: 'B', store: new MemoryStore(), host: '0.0.0.0' });
    const other = await new Browser().call(`http://127.0.0.1:${any.port}/captcha`);
    expect(String(other.headers['set-cookie'])).toContain('; Secure');
  });
});

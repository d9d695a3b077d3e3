import { MemoryStore } from '@tiergate/session';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { parseTrustedProxies, type StartDemoAppOptions, startDemoApp } from '../src/index.ts';
import { Browser } from './helpers.ts';

function app(options: Partial<StartDemoAppOptions> = {}) {
  // Pinned randomness: every captcha code is 'AAAAAA'. Demo mode: the built-in users and the JSON captcha.
  return startDemoApp({ instanceId: 'web<1>', hostname: 'host-1', store: new MemoryStore(), randomInt: () => 0, demo: true, ...options });
}

describe('demo app', () => {
  it('shows instance, host and the TCP peer, escaping HTML', async () => {
    await using demo = await app();
    const page = await new Browser().call(`${demo.url}/`, { headers: { accept: 'text/html', 'x-real-ip': '203.0.113.9' } });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<strong id="instance">web&lt;1&gt;</strong> on host host-1');
    // The peer (127.0.0.1) is not a trusted proxy, so its X-Real-IP is ignored.
    expect(page.text).toContain('<code id="client">127.0.0.1</code>');
    expect(page.text).toContain('<form method="post" action="/login">');
  });

  it('believes X-Real-IP only from a trusted proxy, and only when it is an address', async () => {
    await using demo = await app({ trustedProxies: ['127.0.0.0/8', '::1'] });
    const seen = async (realIp: string) => {
      const page = await new Browser().call(`${demo.url}/`, { headers: { accept: 'text/html', 'x-real-ip': realIp } });
      return /<code id="client">([^<]*)<\/code>/.exec(page.text)?.[1];
    };
    expect(await seen('203.0.113.9')).toBe('203.0.113.9');
    expect(await seen('2001:db8::7')).toBe('2001:db8::7');
    expect(await seen('<script>')).toBe('127.0.0.1');
  });

  it('rejects malformed trusted proxy ranges', () => {
    for (const bad of ['10.0.0.0/33', 'nonsense', '::1/129', '10.0.0.0/x']) {
      expect(() => parseTrustedProxies([bad])).toThrow(expect.objectContaining({ code: 'TG_CONFIG_INVALID' }));
    }
  });

  it('serves the captcha as SVG, or as JSON for tests, and accepts it only once', async () => {
    await using demo = await app();
    const browser = new Browser();
    const svg = await browser.call(`${demo.url}/captcha`, { headers: { accept: 'image/*' } });
    expect(svg.headers['content-type']).toBe('image/svg+xml');
    expect(svg.text).toMatch(/^<svg [^>]+>.*A<\/text>/);
    const login = { user: 'alice', password: 'wonderland', captcha: 'aaaaaa' };
    expect((await browser.call(`${demo.url}/login`, { json: login })).body).toEqual({ user: 'alice' });
    // Replayed with the session it was loaded in (the login regenerated the id; the cookie of the new one):
    const replay = await browser.call(`${demo.url}/login`, { json: login });
    expect(replay.status).toBe(401);
    expect(replay.body?.error).toBe('captcha');
  });

  it('rejects wrong passwords and unknown users, consuming the captcha', async () => {
    await using demo = await app();
    const browser = new Browser();
    for (const [user, password] of [
      ['alice', 'wrong'],
      ['mallory', 'wonderland'],
    ]) {
      expect((await browser.call(`${demo.url}/captcha`)).body).toEqual({ code: 'AAAAAA' });
      const res = await browser.call(`${demo.url}/login`, { json: { user, password, captcha: 'AAAAAA' } });
      expect(res.status).toBe(401);
      expect(res.body?.error).toBe('credentials');
    }
  });

  it('logs in with a form post, regenerating the session id, and logs out', async () => {
    await using demo = await app();
    const browser = new Browser();
    await browser.call(`${demo.url}/captcha`);
    const before = browser.cookies.get('tg.sid');
    const form = await request(`${demo.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `tg.sid=${before}` },
      body: 'user=alice&password=wonderland&captcha=AAAAAA',
    });
    await form.body.dump();
    expect(form.statusCode).toBe(303);
    expect(form.headers.location).toBe('/');
    const after = String(form.headers['set-cookie']).split(';')[0]!.slice('tg.sid='.length);
    expect(after.split('.')[0]).not.toBe(before?.split('.')[0]);
    browser.cookies.set('tg.sid', after);
    expect((await browser.call(`${demo.url}/cart`)).body).toEqual({ user: 'alice', items: {} });
    const logout = await browser.call(`${demo.url}/logout`, { method: 'POST' });
    expect(logout.body).toEqual({ ok: true });
    expect(String(logout.headers['set-cookie'])).toContain('Max-Age=0');
  });

  it('answers 400 for bad input, 413 for big bodies, 415, 404 and 405, without stack traces', async () => {
    await using demo = await app();
    const browser = new Browser();
    const cases: [string, string, unknown, number][] = [
      ['POST', '/cart', { item: '', qty: 1 }, 400],
      ['POST', '/cart', { item: 'a/b', qty: 1 }, 400],
      ['POST', '/cart', { item: 'pen', qty: 0 }, 400],
      ['POST', '/cart', { item: 'pen', qty: 1.5 }, 400],
      ['POST', '/login', { user: 'alice' }, 400],
      ['POST', '/login', [1, 2], 400],
      ['POST', '/cart', { item: 'x'.repeat(20_000) }, 413],
      ['GET', '/nowhere', undefined, 404],
      ['DELETE', '/cart', undefined, 405],
    ];
    for (const [method, path, json, status] of cases) {
      const res = await browser.call(`${demo.url}${path}`, { method: method as 'POST', json });
      expect({ path, json, status: res.status }).toEqual({ path, json, status });
      expect(res.text).not.toMatch(/\bat .*\.ts:\d+/);
    }
    const broken = await request(`${demo.url}/cart`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{oops' });
    expect(broken.statusCode).toBe(400);
    expect(await broken.body.json()).toEqual({ error: 'bad-request', message: 'body is not valid JSON' });
    const xml = await request(`${demo.url}/cart`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: '<a/>' });
    expect(xml.statusCode).toBe(415);
    await xml.body.dump();
  });

  it('adds to the cart and reports health without touching the session store', async () => {
    await using demo = await app();
    const browser = new Browser();
    await browser.call(`${demo.url}/cart`, { json: { item: 'pen', qty: 2 } });
    expect((await browser.call(`${demo.url}/cart`, { json: { item: 'pen', qty: 3 } })).body).toEqual({ items: { pen: 5 } });
    const health = await browser.call(`${demo.url}/healthz`);
    expect(health.body).toEqual({ status: 'ok', instance: 'web<1>' });
    expect(health.headers['set-cookie']).toBeUndefined();
  });
});

describe('demo app session cookie', () => {
  it('uses the configured cookie name, attributes and rolling (sessions.cookie, sessions.rolling)', async () => {
    await using demo = await startDemoApp({
      instanceId: 'web-1',
      store: new MemoryStore(),
      randomInt: () => 0,
      session: { cookieName: 'shop.sid', cookie: { sameSite: 'strict', path: '/', secure: true, httpOnly: true }, rolling: false },
    });
    const browser = new Browser();
    const first = await browser.call(`${demo.url}/captcha`);
    const cookie = String(first.headers['set-cookie']);
    expect(cookie).toMatch(/^shop\.sid=/);
    expect(cookie).toMatch(/; Path=\//i);
    expect(cookie).toMatch(/; SameSite=Strict/i);
    expect(cookie).toMatch(/; Secure/i);
    expect(cookie).toMatch(/; HttpOnly/i);
    expect(browser.cookies.has('tg.sid')).toBe(false);
    // Not rolling: a request that saves the existing session (a new captcha) does not send the cookie again.
    const again = await browser.call(`${demo.url}/captcha`);
    expect(again.status).toBe(200);
    expect(again.headers['set-cookie']).toBeUndefined();
  });
});

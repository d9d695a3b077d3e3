import { describe, expect, it } from 'vitest';
import { StickyCookies } from '../src/sticky-cookie.ts';
import { fetchText, named, server, startTestProxy, startUpstream } from './helpers.ts';

const SECRET = 'a-secret-of-32-characters-length';

function cookieOf(setCookie: string | string[] | undefined): string {
  const v = Array.isArray(setCookie) ? setCookie[0]! : setCookie!;
  return v.slice(0, v.indexOf(';'));
}

describe('sticky cookie', () => {
  it('ids are opaque, secret-bound and stable; attributes follow the config; strip keeps other cookies', () => {
    const cfg = { cookie: 'tg_srv', secret: SECRET, max_age: 3_600_000, secure: true, http_only: true, same_site: 'strict' as const };
    const a = new StickyCookies('app', cfg, ['10.0.0.1:80', '10.0.0.2:80']);
    const set = a.setCookie(1);
    expect(set).toMatch(/^tg_srv=[A-Za-z0-9_-]{22}; Path=\/; Max-Age=3600; Secure; HttpOnly; SameSite=Strict$/);
    expect(set).not.toContain('10.0.0');
    const value = set.slice(0, set.indexOf(';'));
    expect(a.serverOf(`x=1; ${value}; y=2`)).toBe(1);
    expect(new StickyCookies('app', cfg, ['10.0.0.2:80']).serverOf(value)).toBe(0);
    expect(
      new StickyCookies('app', { ...cfg, secret: 'another-secret-of-enough-length' }, ['10.0.0.1:80', '10.0.0.2:80']).serverOf(value),
    ).toBe(-1);
    expect(a.serverOf('tg_srv=forged')).toBe(-1);
    const headers = ['Host', 'h', 'Cookie', `x=1; ${value}; y=2`, 'cookie', value];
    a.strip(headers);
    expect(headers).toEqual(['Host', 'h', 'Cookie', 'x=1; y=2']);
  });

  it('pins a client to the server its cookie names, strips the cookie upstream, falls back and re-issues when that server fails', async () => {
    await using a = await startUpstream(named('a'));
    const b = await startUpstream(named('b'));
    try {
      await using p = await startTestProxy(
        {
          pools: {
            app: {
              algorithm: 'round_robin',
              servers: [server(a), server(b)],
              sticky: { cookie: 'tg_srv', secret: SECRET },
            },
          },
        },
        () => 0,
      );
      const first = await fetchText(`${p.url}/`);
      // SameSite=Lax by default (sticky.same_site).
      expect(first.headers['set-cookie']).toMatch(/^tg_srv=[A-Za-z0-9_-]{22}; Path=\/; HttpOnly; SameSite=Lax$/);
      const cookie = cookieOf(first.headers['set-cookie']);
      const bodies: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await fetchText(`${p.url}/`, { headers: { cookie: `session=s1; ${cookie}` } });
        bodies.push(r.body);
        expect(r.headers['set-cookie']).toBeUndefined();
      }
      expect(new Set(bodies)).toEqual(new Set([first.body]));
      const pinned = first.body === 'a' ? a : b;
      expect(pinned.seen.at(-1)!.headers.cookie).toBe('session=s1');
      // Without the cookie the balancer alternates as usual.
      const plain = [(await fetchText(`${p.url}/`)).body, (await fetchText(`${p.url}/`)).body];
      expect(new Set(plain)).toEqual(new Set(['a', 'b']));
      // The pinned server goes away: the request falls back to the other one and gets its cookie.
      if (pinned === b) await b[Symbol.asyncDispose]();
      else await a[Symbol.asyncDispose]();
      const moved = await fetchText(`${p.url}/`, { headers: { cookie } });
      expect(moved.status).toBe(200);
      expect(moved.body).not.toBe(first.body);
      const newCookie = cookieOf(moved.headers['set-cookie']);
      expect(newCookie).not.toBe(cookie);
      const again = await fetchText(`${p.url}/`, { headers: { cookie: newCookie } });
      expect([again.body, again.headers['set-cookie']]).toEqual([moved.body, undefined]);
    } finally {
      await b[Symbol.asyncDispose]();
    }
  });

  it('a cookie for a server marked down is ignored', async () => {
    await using a = await startUpstream(named('a'));
    await using b = await startUpstream(named('b'));
    const sticky = { cookie: 'tg_srv', secret: SECRET };
    await using p1 = await startTestProxy(
      { pools: { app: { algorithm: 'round_robin', servers: [server(a), server(b)], sticky } } },
      () => 0,
    );
    let toB = '';
    for (let i = 0; i < 2 && !toB; i++) {
      const r = await fetchText(`${p1.url}/`);
      if (r.body === 'b') toB = cookieOf(r.headers['set-cookie']);
    }
    expect(toB).not.toBe('');
    await using p2 = await startTestProxy({ pools: { app: { servers: [server(a), server(b, { down: true })], sticky } } });
    const r = await fetchText(`${p2.url}/`, { headers: { cookie: toB } });
    expect(r.body).toBe('a');
    expect(cookieOf(r.headers['set-cookie'])).not.toBe(toB);
  });
});

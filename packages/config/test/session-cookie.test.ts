import { describe, expect, it } from 'vitest';
import { isLoopbackAddress, sessionCookieSecure, validateConfig } from '../src/index.ts';

const SECRET = 's'.repeat(16);

function config(listeners: object[] | undefined, secure?: boolean) {
  return validateConfig({
    version: 1,
    ...(listeners ? { proxy: { listeners, pools: { app: { servers: [{ address: '127.0.0.1:8081' }] } } } } : {}),
    sessions: { secrets: [SECRET], ...(secure === undefined ? {} : { cookie: { secure } }) },
  });
}

const TLS = { cert: '/etc/site.crt', key: '/etc/site.key' };

describe('sessionCookieSecure: the Secure default follows the listeners', () => {
  it.each([
    ['plain HTTP on 127.0.0.1 (the local stack)', [{ address: '127.0.0.1', port: 8080 }], false],
    [
      'plain HTTP on ::1 and 127.0.0.2',
      [
        { address: '::1', port: 8080 },
        { address: '127.0.0.2', port: 8081 },
      ],
      false,
    ],
    ['plain HTTP on every address', [{ address: '0.0.0.0', port: 80 }], true],
    ['plain HTTP on a LAN address', [{ address: '192.0.2.10', port: 80 }], true],
    ['TLS on loopback', [{ address: '127.0.0.1', port: 8443, tls: TLS }], true],
    [
      'plain 80 beside TLS 443 (classic-lvs-dr)',
      [
        { address: '0.0.0.0', port: 80 },
        { address: '0.0.0.0', port: 443, tls: TLS },
      ],
      true,
    ],
  ])('%s → %s', (_what, listeners, expected) => {
    const file = config(listeners);
    expect(file.sessions?.cookie.secure).toBeUndefined();
    expect(sessionCookieSecure(file)).toBe(expected);
  });

  it('without a proxy section follows the app’s own (plain HTTP) listener, and is Secure when that is unknown', () => {
    const file = config(undefined);
    expect([sessionCookieSecure(file, '127.0.0.1'), sessionCookieSecure(file, '0.0.0.0'), sessionCookieSecure(file)]).toEqual([
      false,
      true,
      true,
    ]);
  });

  it('an explicit sessions.cookie.secure wins either way', () => {
    expect(sessionCookieSecure(config([{ address: '127.0.0.1', port: 8080 }], true))).toBe(true);
    expect(sessionCookieSecure(config([{ address: '0.0.0.0', port: 80 }], false))).toBe(false);
  });

  it('absolute_ttl defaults to one day; 0 turns it off', () => {
    expect(config(undefined).sessions?.absolute_ttl).toBe(86_400_000);
    const off = validateConfig({ version: 1, sessions: { secrets: [SECRET], absolute_ttl: 0 } });
    expect(off.sessions?.absolute_ttl).toBe(0);
  });

  it('knows loopback addresses', () => {
    expect(['127.0.0.1', '127.9.9.9', '::1', '[::1]', 'localhost'].map(isLoopbackAddress)).toEqual([true, true, true, true, true]);
    expect(['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.test'].map(isLoopbackAddress)).toEqual([false, false, false, false, false]);
  });
});

describe('proxy.pools.<name>.sticky.same_site', () => {
  const withSticky = (sticky: object) =>
    validateConfig({
      version: 1,
      proxy: {
        listeners: [{ port: 80 }],
        pools: { app: { servers: [{ address: '127.0.0.1:8081' }], sticky: { cookie: 'srv', secret: SECRET, ...sticky } } },
      },
    });

  it('defaults to lax and takes strict, or none with secure', () => {
    expect(withSticky({}).proxy?.pools.app?.sticky?.same_site).toBe('lax');
    expect(withSticky({ same_site: 'none', secure: true }).proxy?.pools.app?.sticky?.same_site).toBe('none');
  });

  it('rejects none without secure, naming the path', () => {
    expect(() => withSticky({ same_site: 'none' })).toThrow(/proxy\.pools\.app\.sticky\.same_site: same_site: none needs secure: true/);
  });
});

import { describe, expect, it } from 'vitest';
import { bearerTokenMatches, checkAdminRequest, isLoopbackAddress } from '../src/index.ts';

const req = (headers: Record<string, string>, method = 'GET', localAddress = '127.0.0.1') => ({
  method,
  headers,
  socket: { localAddress },
});
const loopback = { address: '127.0.0.1' };
const codeOf = (r: ReturnType<typeof checkAdminRequest>) => r?.code ?? 'ok';

describe('admin access: Host (DNS rebinding)', () => {
  it.each([
    ['127.0.0.1:9901', 'ok'], // curl http://127.0.0.1:9901, the CLI, Prometheus on the host
    ['127.0.0.1', 'ok'],
    ['localhost:9901', 'ok'],
    ['LOCALHOST.', 'ok'],
    ['evil.example:9901', 'TG_ADMIN_FORBIDDEN'], // a rebound name resolving to 127.0.0.1
    ['127.0.0.1.nip.io', 'TG_ADMIN_FORBIDDEN'],
    ['10.0.0.5:9901', 'TG_ADMIN_FORBIDDEN'], // not this listener's address
    ['user@127.0.0.1', 'TG_ADMIN_FORBIDDEN'],
    ['', 'TG_ADMIN_FORBIDDEN'],
  ])('listener 127.0.0.1, Host %j: %s', (host, expected) => {
    expect(codeOf(checkAdminRequest(req({ host }), loopback))).toBe(expected);
  });

  it('no Host at all (an HTTP/1.0 script) is no browser: allowed', () => {
    expect(checkAdminRequest(req({}), loopback)).toBeUndefined();
  });

  it('IPv6 loopback listener: [::1] and localhost; a wildcard listener: any address literal, a name only with the token', () => {
    expect(codeOf(checkAdminRequest(req({ host: '[::1]:9901' }, 'GET', '::1'), { address: '::1' }))).toBe('ok');
    expect(codeOf(checkAdminRequest(req({ host: '[0:0::1]:9901' }, 'GET', '::1'), { address: '::1' }))).toBe('ok');
    expect(codeOf(checkAdminRequest(req({ host: 'localhost' }, 'GET', '::1'), { address: '::1' }))).toBe('ok');
    const wild = { address: '0.0.0.0', token: 't' };
    const auth = { authorization: 'Bearer t' };
    expect(codeOf(checkAdminRequest(req({ host: '10.0.0.5:9901' }, 'GET', '10.0.0.5'), wild))).toBe('TG_ADMIN_UNAUTHORIZED');
    expect(codeOf(checkAdminRequest(req({ ...auth, host: '10.0.0.5:9901' }, 'GET', '10.0.0.5'), wild))).toBe('ok');
    expect(codeOf(checkAdminRequest(req({ ...auth, host: 'localhost:9901' }), wild))).toBe('ok');
    // A host name (Prometheus scraping proxy1:9901) passes with the token, which a rebinding page cannot know.
    expect(codeOf(checkAdminRequest(req({ ...auth, host: 'proxy1.internal:9901' }, 'GET', '10.0.0.5'), wild))).toBe('ok');
    expect(codeOf(checkAdminRequest(req({ host: 'proxy1.internal:9901' }, 'GET', '10.0.0.5'), wild))).toBe('TG_ADMIN_FORBIDDEN');
    const wrong = { authorization: 'Bearer x' };
    expect(codeOf(checkAdminRequest(req({ ...wrong, host: 'proxy1.internal:9901' }, 'GET', '10.0.0.5'), wild))).toBe('TG_ADMIN_FORBIDDEN');
    // A listener on 10.0.0.5 without the token: its own address, not localhost (which does not reach it).
    const lan = { address: '10.0.0.5', token: 't' };
    expect(codeOf(checkAdminRequest(req({ host: '10.0.0.5:9901' }, 'GET', '10.0.0.5'), lan))).toBe('TG_ADMIN_UNAUTHORIZED');
    expect(codeOf(checkAdminRequest(req({ host: 'localhost:9901' }, 'GET', '10.0.0.5'), lan))).toBe('TG_ADMIN_FORBIDDEN');
  });
});

describe('admin access: Origin (cross-site requests from a browser on the host)', () => {
  const host = '127.0.0.1:9901';
  it.each([
    ['GET', 'http://127.0.0.1:9901', 'ok'],
    ['GET', 'http://localhost:3000', 'ok'],
    ['GET', 'https://evil.example', 'TG_ADMIN_FORBIDDEN'],
    ['GET', 'null', 'TG_ADMIN_FORBIDDEN'],
    ['POST', 'https://evil.example', 'TG_ADMIN_FORBIDDEN'],
    ['POST', 'http://127.0.0.1:9901', 'TG_ADMIN_FORBIDDEN'], // a state change never comes from a browser
  ])('%s with Origin %j: %s', (method, origin, expected) => {
    expect(codeOf(checkAdminRequest(req({ host, origin }, method), loopback))).toBe(expected);
  });

  it('POST as curl and the CLI send it (Host, no Origin) passes; with Sec-Fetch-Site it is a browser', () => {
    expect(checkAdminRequest(req({ host }, 'POST'), loopback)).toBeUndefined();
    expect(codeOf(checkAdminRequest(req({ host, 'sec-fetch-site': 'same-origin' }, 'POST'), loopback))).toBe('TG_ADMIN_FORBIDDEN');
  });
});

describe('admin access: token', () => {
  it('needs `Bearer <token>` when configured; without the right token the Host check runs first', () => {
    const admin = { address: '127.0.0.1', token: 's3cret' };
    expect(checkAdminRequest(req({ host: '127.0.0.1', authorization: 'Bearer s3cret' }), admin)).toBeUndefined();
    expect(checkAdminRequest(req({ host: '127.0.0.1', authorization: 'bearer  s3cret ' }), admin)).toBeUndefined();
    expect(checkAdminRequest(req({ host: '127.0.0.1', authorization: 'Bearer s3cre' }), admin)).toMatchObject({ status: 401 });
    expect(checkAdminRequest(req({ host: '127.0.0.1' }), admin)).toMatchObject({ status: 401, code: 'TG_ADMIN_UNAUTHORIZED' });
    expect(checkAdminRequest(req({ host: 'evil.example', authorization: 'Bearer s3cre' }), admin)).toMatchObject({ status: 403 });
    expect(checkAdminRequest(req({ host: 'evil.example' }), admin)).toMatchObject({ status: 403 });
    // The right token: any Host name (only the operator has the token; a rebinding page does not).
    expect(checkAdminRequest(req({ host: 'proxy1', authorization: 'Bearer s3cret' }), admin)).toBeUndefined();
  });

  it('bearerTokenMatches compares whole tokens of any length', () => {
    expect(bearerTokenMatches('Bearer abc', 'abc')).toBe(true);
    expect(bearerTokenMatches('Bearer abcd', 'abc')).toBe(false);
    expect(bearerTokenMatches('Basic abc', 'abc')).toBe(false);
    expect(bearerTokenMatches(undefined, 'abc')).toBe(false);
  });

  it('isLoopbackAddress: 127/8, ::1 and ::ffff:127.x, localhost; not wildcards', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost'].map(isLoopbackAddress)).toEqual([
      true,
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', 'example.test'].map(isLoopbackAddress)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});

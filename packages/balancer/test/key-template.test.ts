import { describe, expect, it } from 'vitest';
import { compileKeyTemplate, type KeyVars } from '../src/index.ts';

const vars: KeyVars = {
  uri: '/shop/cart',
  requestUri: '/shop/cart?id=7&x=1',
  remoteAddr: '203.0.113.9',
  host: 'example.test',
  header: (name) => ({ 'x-user-id': 'u42', 'user-agent': 'curl' })[name],
  cookie: (name) => ({ sid: 's-123' })[name],
  arg: (name) => ({ id: '7' })[name],
};

describe('compileKeyTemplate', () => {
  it.each([
    ['$request_uri', '/shop/cart?id=7&x=1'],
    ['$uri', '/shop/cart'],
    ['$remote_addr', '203.0.113.9'],
    ['$host', 'example.test'],
    ['$http_x_user_id', 'u42'],
    ['$http_User_Agent', 'curl'],
    ['$cookie_sid', 's-123'],
    ['$arg_id', '7'],
    ['$arg_missing', ''],
    ['static', 'static'],
    ['', ''],
    ['$host$uri', 'example.test/shop/cart'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: nginx's ${name} syntax, not a JS template
    ['u:${cookie_sid}-x', 'u:s-123-x'],
    ['$host:$arg_id/$http_nope', 'example.test:7/'],
  ])('%j → %j', (template, expected) => {
    expect(compileKeyTemplate(template)(vars)).toBe(expected);
  });

  // biome-ignore lint/suspicious/noTemplateCurlyInString: nginx's ${name} syntax, not a JS template
  it.each(['$request', '$http_', '$cookie_', '$unknown_var', '$1', '$', 'a$-b', '${host', '${}'])(
    'rejects %j with TG_CONFIG_INVALID',
    (t) => {
      expect(() => compileKeyTemplate(t)).toThrow(expect.objectContaining({ code: 'TG_CONFIG_INVALID' }));
    },
  );
});

import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { assertSessionSize, decodeSession, diffSession, encodeSession, sizeOfFields } from '../src/index.ts';

describe('session codec', () => {
  it('encodes one JSON field per top-level key and drops undefined values', () => {
    expect({ ...encodeSession({ user: 'alice', cart: { a: 1 }, gone: undefined }) }).toEqual({ user: '"alice"', cart: '{"a":1}' });
  });

  it('diffs to only the changed and deleted keys', () => {
    const before = encodeSession({ a: 1, b: [1], c: 'x' });
    const after = encodeSession({ a: 1, b: [1, 2], d: true });
    expect(diffSession(before, after)).toEqual({ set: Object.assign(Object.create(null), { b: '[1,2]', d: 'true' }), delete: ['c'] });
  });

  it('decodes, treating __proto__ as a plain key', () => {
    const data = decodeSession(encodeSession(JSON.parse('{"__proto__":{"admin":true},"n":1}')));
    expect(Object.getPrototypeOf(data)).toBe(Object.prototype);
    expect(Object.keys(data)).toEqual(['__proto__', 'n']);
    expect((data as { admin?: boolean }).admin).toBeUndefined();
  });

  it('reports corrupt JSON as TG_SESSION_CORRUPT', () => {
    const err = (() => {
      try {
        decodeSession({ user: '{not json' });
      } catch (e) {
        return e;
      }
    })();
    expect(isTgError(err, 'TG_SESSION_CORRUPT')).toBe(true);
  });

  it('measures and limits size in UTF-8 bytes', () => {
    const fields = encodeSession({ k: 'é' });
    expect(sizeOfFields(fields)).toBe(1 + 4);
    expect(() => assertSessionSize(fields, 5)).not.toThrow();
    expect(() => assertSessionSize(fields, 4)).toThrow(expect.objectContaining({ code: 'TG_SESSION_TOO_LARGE' }));
  });
});

import { describe, expect, it } from 'vitest';
import { isSessionId, newSessionId, signSessionId, verifySignedSessionId } from '../src/index.ts';
import { SECRET_A, SECRET_B } from './helpers.ts';

describe('session ids', () => {
  it('are 32 random bytes in base64url', () => {
    const id = newSessionId((n) => Buffer.alloc(n, 0xff));
    expect(id).toBe(Buffer.alloc(32, 0xff).toString('base64url'));
    expect(id).toHaveLength(43);
    expect(isSessionId(id)).toBe(true);
    expect(newSessionId()).not.toBe(newSessionId());
  });

  it('verify only with a secret that signed them', () => {
    const id = newSessionId();
    const signed = signSessionId(id, SECRET_A);
    expect(verifySignedSessionId(signed, [SECRET_A])).toBe(id);
    expect(verifySignedSessionId(signed, [SECRET_B])).toBeUndefined();
    // Rotation: newest first, the old secret still verifies.
    expect(verifySignedSessionId(signed, [SECRET_B, SECRET_A])).toBe(id);
  });

  it('reject tampering with the id or the signature, and malformed values', () => {
    const id = newSessionId((n) => Buffer.alloc(n, 1));
    const signed = signSessionId(id, SECRET_A);
    const otherId = newSessionId((n) => Buffer.alloc(n, 2));
    expect(verifySignedSessionId(`${otherId}${signed.slice(id.length)}`, [SECRET_A])).toBeUndefined();
    expect(verifySignedSessionId(`${signed.slice(0, -2)}AA`, [SECRET_A])).toBeUndefined();
    // Every other last character, including those that decode to the same bytes (spare bits).
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (const ch of alphabet.replace(signed.at(-1)!, '')) {
      expect(verifySignedSessionId(signed.slice(0, -1) + ch, [SECRET_A])).toBeUndefined();
    }
    for (const bad of ['', '.', id, `${id}.`, `../../etc.${signed.split('.')[1]}`, 'x'.repeat(500)]) {
      expect(verifySignedSessionId(bad, [SECRET_A])).toBeUndefined();
    }
  });
});

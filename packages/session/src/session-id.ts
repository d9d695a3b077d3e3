import { createHmac, randomBytes as cryptoRandomBytes, timingSafeEqual } from 'node:crypto';

/** Source of random bytes; a parameter so tests can pin ids. */
export type RandomBytes = (size: number) => Buffer;

/** 32 random bytes = 256 bits, well above OWASP's 64-bit minimum of entropy for session ids. */
const ID_BYTES = 32;
const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** A new session id: 32 random bytes, base64url (43 characters). */
export function newSessionId(randomBytes: RandomBytes = cryptoRandomBytes): string {
  return randomBytes(ID_BYTES).toString('base64url');
}

/** True when `id` has the shape newSessionId produces (ids from cookies are checked before use as a key). */
export function isSessionId(id: string): boolean {
  return ID_PATTERN.test(id);
}

function mac(id: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(id).digest();
}

/** The cookie value `<id>.<HMAC-SHA256(secret, id) base64url>`. */
export function signSessionId(id: string, secret: string): string {
  return `${id}.${mac(id, secret).toString('base64url')}`;
}

/**
 * The session id inside a signed cookie value when any of `secrets` signed it (so old cookies keep
 * working across a rotation), else undefined. Compares in constant time per secret.
 */
export function verifySignedSessionId(value: string, secrets: readonly string[]): string | undefined {
  const dot = value.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const id = value.slice(0, dot);
  if (!isSessionId(id)) return undefined;
  // Compare the text, not decoded bytes: base64 decoding ignores the spare bits of the last
  // character, so several spellings would decode to one MAC and a "changed" cookie would verify.
  const given = Buffer.from(value.slice(dot + 1));
  let valid = false;
  for (const secret of secrets) {
    const expected = Buffer.from(mac(id, secret).toString('base64url'));
    // Evaluate every secret (no early exit) so timing does not reveal which one matched.
    if (given.length === expected.length && timingSafeEqual(given, expected)) valid = true;
  }
  return valid ? id : undefined;
}

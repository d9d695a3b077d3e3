import { randomInt as cryptoRandomInt } from 'node:crypto';

/** Uniform integer in [0, max); a parameter so tests can pin codes. */
export type RandomInt = (max: number) => number;

// No 0/O, 1/I/L: a captcha a human misreads is a failed login that tests nothing.
const ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';

/** A new 6-character captcha code. */
export function newCaptchaCode(randomInt: RandomInt = cryptoRandomInt): string {
  let code = '';
  for (let i = 0; i < 6; i++) code += ALPHABET[randomInt(ALPHABET.length)];
  return code;
}

/**
 * The code as a small SVG. This is a demo: it is not meant to resist OCR, only to be the
 * per-session state whose loss on another app server is the bug the Redis store fixes.
 */
export function renderCaptchaSvg(code: string): string {
  const glyphs = [...code]
    .map((ch, i) => {
      const rotate = ((ch.charCodeAt(0) * 37 + i * 11) % 31) - 15;
      return `<text x="${14 + i * 22}" y="34" transform="rotate(${rotate} ${14 + i * 22} 28)">${ch}</text>`;
    })
    .join('');
  return (
    '<svg xmlns="http://www.w3.org/2000/svg" width="150" height="48" viewBox="0 0 150 48">' +
    '<rect width="150" height="48" fill="#f4f1e8"/>' +
    '<path d="M0 30 C40 5, 90 45, 150 18" stroke="#9a8" fill="none"/>' +
    `<g font-family="monospace" font-size="26" font-weight="bold" fill="#345">${glyphs}</g></svg>`
  );
}

// Shared by the k6 scripts of this folder (a plain ES module: k6 and the Node runner both load it).

/** The stack under test: `-e BASE_URL=http://VIP` for a deployed one; default `npm start`'s local stack. */
export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');

/** The demo app answers JSON to these (captcha code, login, cart). */
export const JSON_HEADERS = { Accept: 'application/json' };

/** The demo app's built-in users (the local stack turns them on). */
export const USERS = [
  { user: 'alice', password: 'wonderland' },
  { user: 'bob', password: 'builder' },
];

/** Every script prints p(99) too: the local stack's thresholds are on it. */
export const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

/**
 * The parsed JSON body, or undefined when the response is not JSON (an error page, a proxy 502).
 * @param {import('k6/http').RefinedResponse<any>} res
 * @returns {any}
 */
export function jsonOf(res) {
  try {
    return res.json();
  } catch {
    return undefined;
  }
}

/**
 * True when `items` holds exactly the expected quantities.
 * @param {unknown} items
 * @param {Record<string, number>} expected
 */
export function sameCart(items, expected) {
  if (typeof items !== 'object' || items === null) return false;
  const got = /** @type {Record<string, unknown>} */ (items);
  const keys = Object.keys(expected);
  return Object.keys(got).length === keys.length && keys.every((k) => got[k] === expected[k]);
}

/**
 * A number from `__ENV`, or the default.
 * @param {string} name
 * @param {number} fallback
 */
export function envNumber(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name}=${raw} is not a number`);
  return n;
}

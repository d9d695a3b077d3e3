// smoke: a few virtual users walk every route of the demo app once per iteration, with checks on status and body.
// Is the stack up and answering correctly? Run it first, and after every deploy.
//   k6 run loadtest/k6/smoke.js                       (BASE_URL defaults to the local stack, http://127.0.0.1:8080)
//   k6 run -e BASE_URL=http://10.0.0.100 loadtest/k6/smoke.js
import { check, group } from 'k6';
import http from 'k6/http';
import { BASE_URL, JSON_HEADERS, jsonOf, TREND_STATS, USERS } from './lib.js';

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    smoke: { executor: 'per-vu-iterations', vus: 3, iterations: 5, maxDuration: '1m' },
  },
  thresholds: {
    // Every check must pass and no request may fail: a smoke test has no error budget.
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
    // Loopback, a few VUs: anything slow here is a bug, not load (see loadtest/README.md for the measured values).
    http_req_duration: ['p(95)<100', 'p(99)<250'],
  },
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const account = USERS[(__VU - 1) % USERS.length] ?? USERS[0];
  const item = `smoke-${__VU}-${__ITER}`;

  group('pages', () => {
    const home = http.get(`${BASE_URL}/`, { tags: { name: 'home' } });
    check(home, {
      'home: 200 html': (r) => r.status === 200 && String(r.headers['Content-Type']).startsWith('text/html'),
      'home: names the app server': (r) => String(r.body).includes('tiergate demo') && Boolean(r.headers['X-Instance-Id']),
    });
    const health = http.get(`${BASE_URL}/healthz`, { tags: { name: 'healthz' } });
    check(health, { 'healthz: 200 ok': (r) => r.status === 200 && jsonOf(r)?.status === 'ok' });
    const svg = http.get(`${BASE_URL}/captcha`, { tags: { name: 'captcha svg' } });
    check(svg, { 'captcha: 200 svg': (r) => r.status === 200 && String(r.headers['Content-Type']).startsWith('image/svg+xml') });
  });

  group('session', () => {
    const captcha = http.get(`${BASE_URL}/captcha`, { headers: JSON_HEADERS, tags: { name: 'captcha' } });
    const code = jsonOf(captcha)?.code;
    check(captcha, { 'captcha: 200 with a code': (r) => r.status === 200 && typeof code === 'string' && code.length > 0 });
    const login = http.post(`${BASE_URL}/login`, { ...account, captcha: String(code) }, { headers: JSON_HEADERS, tags: { name: 'login' } });
    check(login, { 'login: 200 as the user': (r) => r.status === 200 && jsonOf(r)?.user === account.user });
    const add = http.post(`${BASE_URL}/cart`, { item }, { headers: JSON_HEADERS, tags: { name: 'add to cart' } });
    check(add, { 'add to cart: 200 with the item': (r) => r.status === 200 && jsonOf(r)?.items?.[item] === 1 });
    const cart = http.get(`${BASE_URL}/cart`, { headers: JSON_HEADERS, tags: { name: 'cart' } });
    check(cart, {
      'cart: the user and the item': (r) => r.status === 200 && jsonOf(r)?.user === account.user && jsonOf(r)?.items?.[item] === 1,
    });
    const logout = http.post(`${BASE_URL}/logout`, null, { headers: JSON_HEADERS, tags: { name: 'logout' } });
    check(logout, { 'logout: 200': (r) => r.status === 200 });
    const after = http.get(`${BASE_URL}/cart`, { headers: JSON_HEADERS, tags: { name: 'cart' } });
    check(after, { 'cart after logout: anonymous and empty': (r) => r.status === 200 && jsonOf(r)?.user === null });
  });
}

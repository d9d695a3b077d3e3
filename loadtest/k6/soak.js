// soak: long and flat, for leaks. A moderate constant arrival rate of full session flows (captcha → login → cart)
// for DURATION (default 30 minutes) so that sessions, connections and buffers churn; compare the proxy's RSS in
// the admin /metrics (tiergate_proxy_worker_memory_bytes{kind="rss"}) at the start and the end, and latency per interval in the
// summary export of successive runs.
//   k6 run loadtest/k6/soak.js
//   k6 run -e DURATION=4h -e RATE=20 -e BASE_URL=http://10.0.0.100 loadtest/k6/soak.js
import { check } from 'k6';
import http from 'k6/http';
import { BASE_URL, envNumber, JSON_HEADERS, jsonOf, TREND_STATS, USERS } from './lib.js';

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: envNumber('RATE', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30m',
      preAllocatedVUs: 10,
      maxVUs: 50,
    },
  },
  thresholds: {
    // A soak fails on degradation, not on load: same bounds as steady, over the whole run.
    checks: ['rate>0.999'],
    http_req_failed: ['rate<0.001'],
    http_req_duration: ['p(95)<50', 'p(99)<100'],
    dropped_iterations: ['count==0'],
  },
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const account = USERS[__ITER % USERS.length] ?? USERS[0];
  const captcha = http.get(`${BASE_URL}/captcha`, { headers: JSON_HEADERS, tags: { name: 'captcha' } });
  const login = http.post(
    `${BASE_URL}/login`,
    { ...account, captcha: String(jsonOf(captcha)?.code) },
    { headers: JSON_HEADERS, tags: { name: 'login' } },
  );
  check(login, { 'login: 200': (r) => r.status === 200 });
  const item = `soak-${__VU}`;
  http.post(`${BASE_URL}/cart`, { item }, { headers: JSON_HEADERS, tags: { name: 'add to cart' } });
  const cart = http.get(`${BASE_URL}/cart`, { headers: JSON_HEADERS, tags: { name: 'cart' } });
  check(cart, {
    'cart: logged in with the item': (r) => r.status === 200 && jsonOf(r)?.user === account.user && jsonOf(r)?.items?.[item] === 1,
  });
}

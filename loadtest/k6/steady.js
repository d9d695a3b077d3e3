// steady: a constant arrival rate (open model: new iterations arrive whether or not earlier ones finished) for a
// given duration, with latency and error thresholds. Each iteration is one anonymous page view and one cart read,
// both of which load the session from the store.
//   k6 run loadtest/k6/steady.js                                   (100 iterations/s = 200 req/s for 1 minute)
//   k6 run -e RATE=500 -e DURATION=5m -e BASE_URL=http://10.0.0.100 loadtest/k6/steady.js
import { check } from 'k6';
import http from 'k6/http';
import { BASE_URL, envNumber, JSON_HEADERS, TREND_STATS } from './lib.js';

const RATE = envNumber('RATE', 100);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '1m',
      preAllocatedVUs: envNumber('VUS', 10),
      maxVUs: envNumber('MAX_VUS', 50),
    },
  },
  thresholds: {
    // Well below the knee (see stress), the stack must not fail a request and must keep its tail short.
    http_req_failed: ['rate<0.001'],
    http_req_duration: ['p(95)<50', 'p(99)<100'],
    // An iteration dropped means the load generator had no free VU: the rate asked for was not delivered.
    dropped_iterations: ['count==0'],
    checks: ['rate>0.999'],
  },
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const home = http.get(`${BASE_URL}/`, { tags: { name: 'home' } });
  check(home, { 'home: 200': (r) => r.status === 200 });
  const cart = http.get(`${BASE_URL}/cart`, { headers: JSON_HEADERS, tags: { name: 'cart' } });
  check(cart, { 'cart: 200': (r) => r.status === 200 });
}

// spike: a sudden burst from a modest baseline to several times the steady rate, then back. Does the stack absorb
// it (queues, no errors) and recover (latency back to the baseline's after the spike)?
//   k6 run loadtest/k6/spike.js
//   k6 run -e BASE=50 -e PEAK=1000 -e BASE_URL=http://10.0.0.100 loadtest/k6/spike.js
import { check } from 'k6';
import http from 'k6/http';
import { BASE_URL, envNumber, TREND_STATS } from './lib.js';

const BASE = envNumber('BASE', 20);
const PEAK = envNumber('PEAK', 200);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: BASE,
      timeUnit: '1s',
      preAllocatedVUs: 20,
      maxVUs: envNumber('MAX_VUS', 60),
      stages: [
        { target: BASE, duration: '10s' },
        { target: PEAK, duration: '5s' },
        { target: PEAK, duration: '15s' },
        { target: BASE, duration: '5s' },
        { target: BASE, duration: '10s' },
      ],
    },
  },
  thresholds: {
    // A spike may queue (latency) but must not fail requests.
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(95)<250', 'p(99)<500'],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: TREND_STATS,
};

export default function () {
  const res = http.get(`${BASE_URL}/`, { tags: { name: 'home' } });
  check(res, { 'home: 200': (r) => r.status === 200 });
}

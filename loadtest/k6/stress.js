// stress: a staircase of arrival rates, one ramping-arrival-rate scenario per step, each with its own latency
// threshold; the first step whose thresholds are ✗ in the summary is the knee of the stack (the rate beyond which
// latency climbs or requests fail). A stress run is EXPECTED to exit 99 once a step passes the knee: that is its
// answer, not a broken script. Steps: STEPS (comma-separated iterations/s), each STEP_SECONDS long.
//   k6 run loadtest/k6/stress.js
//   k6 run -e STEPS=200,400,800,1600 -e STEP_SECONDS=30 -e BASE_URL=http://10.0.0.100 loadtest/k6/stress.js
import { check } from 'k6';
import http from 'k6/http';
import { BASE_URL, envNumber, TREND_STATS } from './lib.js';

const STEPS = (__ENV.STEPS || '50,100,200,400,800').split(',').map(Number);
const STEP_SECONDS = envNumber('STEP_SECONDS', 20);
/** The knee's definition: the p(95) a step must stay under (ms). */
const P95_MS = envNumber('P95_MS', 50);

/** @type {Record<string, import('k6/options').Scenario>} */
const scenarios = {};
/** @type {Record<string, string[]>} */
const thresholds = { http_req_failed: ['rate<0.05'] };
STEPS.forEach((rate, i) => {
  const name = `rate_${rate}`;
  scenarios[name] = {
    executor: 'ramping-arrival-rate',
    startTime: `${i * STEP_SECONDS}s`,
    startRate: rate,
    timeUnit: '1s',
    preAllocatedVUs: Math.max(10, Math.ceil(rate / 10)),
    maxVUs: Math.max(20, Math.ceil(rate / 5)),
    stages: [{ target: rate, duration: `${STEP_SECONDS}s` }],
    gracefulStop: '5s',
  };
  thresholds[`http_req_duration{scenario:${name}}`] = [`p(95)<${P95_MS}`];
  thresholds[`dropped_iterations{scenario:${name}}`] = ['count==0'];
});

/** @type {import('k6/options').Options} */
export const options = { scenarios, thresholds, summaryTrendStats: TREND_STATS };

export default function () {
  const res = http.get(`${BASE_URL}/`, { tags: { name: 'home' } });
  check(res, { 'home: 200': (r) => r.status === 200 });
}

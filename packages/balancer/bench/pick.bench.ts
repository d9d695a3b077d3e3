/**
 * Microbenchmark: picks per second per algorithm (pick + release, 10 servers, 1 000 distinct
 * clients/keys). Run by hand, not part of the test run:
 *   node packages/balancer/bench/pick.bench.ts
 * Each algorithm runs at most BUDGET_MS (and at most MAX_PICKS picks) after a warm-up.
 */
import { ALGORITHMS, type AlgorithmName, createBalancer, type PickRequest, type ServerSpec } from '../src/index.ts';

const BUDGET_MS = 1000;
const MAX_PICKS = 20_000_000;
const NONE: ReadonlySet<number> = new Set();

const servers: ServerSpec[] = Array.from({ length: 10 }, (_, k) => ({
  address: `10.0.0.${k + 1}:8080`,
  weight: 1 + (k % 4),
  maxFails: 1,
  failTimeoutMs: 10_000,
  backup: false,
  down: false,
  maxConns: 0,
  slowStartMs: 0,
}));

const requests: PickRequest[] = Array.from({ length: 1000 }, (_, k) => ({
  clientAddress: `198.51.${k % 256}.${(k * 7) % 256}`,
  hashKey: `/product/${k}`,
  tried: NONE,
}));

function run(algorithm: AlgorithmName, consistent: boolean): { picks: number; ms: number } {
  const b = createBalancer(algorithm, servers, { random: Math.random, consistent });
  const outcome = { failed: false, latencyMs: 12 };
  let picks = 0;
  const start = performance.now();
  let now = start;
  while (now - start < BUDGET_MS && picks < MAX_PICKS) {
    // check the clock every 10 000 picks so timing does not dominate
    for (let k = 0; k < 10_000; k++, picks++) {
      const i = b.pick(requests[picks % 1000]!, now);
      b.release(i, outcome, now);
    }
    now = performance.now();
  }
  return { picks, ms: now - start };
}

const cases: [AlgorithmName, boolean][] = ALGORITHMS.map((a) => [a, false]);
cases.splice(ALGORITHMS.indexOf('hash') + 1, 0, ['hash', true]);
for (const [algorithm, consistent] of cases) {
  run(algorithm, consistent); // warm-up
  const { picks, ms } = run(algorithm, consistent);
  const name = consistent ? `${algorithm} consistent` : algorithm;
  console.log(
    `${name.padEnd(18)} ${Math.round((picks / ms) * 1000)
      .toLocaleString('en-US')
      .padStart(12)} picks/s`,
  );
}

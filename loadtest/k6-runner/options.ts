/**
 * k6 `options` → the runner's plan: scenarios with their executors, thresholds, trend stats. Everything k6 accepts
 * that is not listed here is refused (K6Unsupported) by name, so a script never runs with an option ignored.
 */
import { K6Unsupported } from './refusal.ts';

export type Scenario =
  | ({ executor: 'constant-vus'; vus: number; duration: number } & Common)
  | ({ executor: 'per-vu-iterations'; vus: number; iterations: number; maxDuration: number } & Common)
  | ({ executor: 'shared-iterations'; vus: number; iterations: number; maxDuration: number } & Common)
  | ({
      executor: 'constant-arrival-rate';
      rate: number;
      timeUnit: number;
      duration: number;
      preAllocatedVUs: number;
      maxVUs: number;
    } & Common)
  | ({
      executor: 'ramping-arrival-rate';
      startRate: number;
      timeUnit: number;
      stages: { target: number; duration: number }[];
      preAllocatedVUs: number;
      maxVUs: number;
    } & Common);

interface Common {
  name: string;
  exec: string;
  startTime: number;
  gracefulStop: number;
  env: Record<string, string>;
  tags: Record<string, string>;
}

export interface RunPlan {
  scenarios: Scenario[];
  /** metric key (e.g. `http_req_duration{name:login}`) → threshold expressions. */
  thresholds: Record<string, string[]>;
  summaryTrendStats: string[];
  maxRedirects: number;
  noCookiesReset: boolean;
  tags: Record<string, string>;
}

const TOP_LEVEL = new Set([
  'scenarios',
  'thresholds',
  'summaryTrendStats',
  'vus',
  'duration',
  'iterations',
  'maxRedirects',
  'noCookiesReset',
  'tags',
]);
const COMMON = ['executor', 'startTime', 'gracefulStop', 'exec', 'env', 'tags'];
const EXECUTOR_KEYS: Record<string, string[]> = {
  'constant-vus': ['vus', 'duration'],
  'per-vu-iterations': ['vus', 'iterations', 'maxDuration'],
  'shared-iterations': ['vus', 'iterations', 'maxDuration'],
  'constant-arrival-rate': ['rate', 'timeUnit', 'duration', 'preAllocatedVUs', 'maxVUs'],
  'ramping-arrival-rate': ['startRate', 'timeUnit', 'stages', 'preAllocatedVUs', 'maxVUs'],
};
export const DEFAULT_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)'];

/** k6 duration strings ("1m30s", "500ms", "2h") → milliseconds. */
export function parseDuration(value: unknown, where: string): number {
  if (typeof value !== 'string') throw new K6Unsupported(`${where}: a duration that is not a string (${JSON.stringify(value)})`);
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001 };
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|h|m|s)/gy;
  let total = 0;
  let end = 0;
  for (const m of value.matchAll(re)) {
    total += Number(m[1]) * units[m[2]!]!;
    end = m.index + m[0].length;
  }
  if (end !== value.length || value.length === 0)
    throw new Error(`${where}: '${value}' is not a k6 duration (like "30s", "1m30s", "500ms")`);
  return total;
}

function positiveInt(value: unknown, where: string, min = 1): number {
  if (!Number.isInteger(value) || (value as number) < min)
    throw new Error(`${where}: must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return value as number;
}

function stringMap(value: unknown, where: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new Error(`${where}: must be an object of strings`);
  }
  return value as Record<string, string>;
}

function scenario(name: string, raw: Record<string, unknown>): Scenario {
  const where = `options.scenarios.${name}`;
  const executor = String(raw.executor);
  const keys = EXECUTOR_KEYS[executor];
  if (!keys) throw new K6Unsupported(`${where}.executor '${executor}'`, `implemented: ${Object.keys(EXECUTOR_KEYS).join(', ')}`);
  for (const key of Object.keys(raw)) {
    if (!COMMON.includes(key) && !keys.includes(key)) throw new K6Unsupported(`${where}.${key} (for executor ${executor})`);
  }
  const common: Common = {
    name,
    exec: raw.exec === undefined ? 'default' : String(raw.exec),
    startTime: raw.startTime === undefined ? 0 : parseDuration(raw.startTime, `${where}.startTime`),
    gracefulStop: raw.gracefulStop === undefined ? 30_000 : parseDuration(raw.gracefulStop, `${where}.gracefulStop`),
    env: stringMap(raw.env, `${where}.env`),
    tags: stringMap(raw.tags, `${where}.tags`),
  };
  const maxDuration = raw.maxDuration === undefined ? 600_000 : parseDuration(raw.maxDuration, `${where}.maxDuration`);
  const timeUnit = raw.timeUnit === undefined ? 1000 : parseDuration(raw.timeUnit, `${where}.timeUnit`);
  switch (executor) {
    case 'constant-vus':
      return {
        ...common,
        executor,
        vus: positiveInt(raw.vus ?? 1, `${where}.vus`),
        duration: parseDuration(raw.duration, `${where}.duration`),
      };
    case 'per-vu-iterations':
    case 'shared-iterations':
      return {
        ...common,
        executor,
        vus: positiveInt(raw.vus ?? 1, `${where}.vus`),
        iterations: positiveInt(raw.iterations ?? 1, `${where}.iterations`),
        maxDuration,
      };
    case 'constant-arrival-rate': {
      const preAllocatedVUs = positiveInt(raw.preAllocatedVUs, `${where}.preAllocatedVUs`);
      return {
        ...common,
        executor,
        rate: positiveInt(raw.rate, `${where}.rate`),
        timeUnit,
        duration: parseDuration(raw.duration, `${where}.duration`),
        preAllocatedVUs,
        maxVUs: raw.maxVUs === undefined ? preAllocatedVUs : positiveInt(raw.maxVUs, `${where}.maxVUs`),
      };
    }
    default: {
      const preAllocatedVUs = positiveInt(raw.preAllocatedVUs, `${where}.preAllocatedVUs`);
      if (!Array.isArray(raw.stages) || raw.stages.length === 0) throw new Error(`${where}.stages: must be a non-empty array`);
      const stages = raw.stages.map((s: Record<string, unknown>, i: number) => {
        for (const key of Object.keys(s))
          if (key !== 'target' && key !== 'duration') throw new K6Unsupported(`${where}.stages[${i}].${key}`);
        return {
          target: positiveInt(s.target, `${where}.stages[${i}].target`, 0),
          duration: parseDuration(s.duration, `${where}.stages[${i}].duration`),
        };
      });
      return {
        ...common,
        executor: 'ramping-arrival-rate',
        startRate: positiveInt(raw.startRate ?? 0, `${where}.startRate`, 0),
        timeUnit,
        stages,
        preAllocatedVUs,
        maxVUs: raw.maxVUs === undefined ? preAllocatedVUs : positiveInt(raw.maxVUs, `${where}.maxVUs`),
      };
    }
  }
}

/** Validates a script's `options` (as exported) and turns them into a plan; refuses what is not implemented. */
export function planFrom(options: Record<string, unknown> | undefined): RunPlan {
  const o = options ?? {};
  for (const key of Object.keys(o)) if (!TOP_LEVEL.has(key)) throw new K6Unsupported(`options.${key}`);
  let scenarios: Scenario[];
  if (o.scenarios !== undefined) {
    if (o.vus !== undefined || o.duration !== undefined || o.iterations !== undefined) {
      throw new Error('options: vus/duration/iterations and scenarios together are ambiguous (k6 ignores the shortcuts); keep one');
    }
    scenarios = Object.entries(o.scenarios as Record<string, Record<string, unknown>>).map(([name, raw]) => scenario(name, raw));
  } else if (o.duration !== undefined) {
    // k6's shortcut: vus + duration is a constant-vus scenario named "default".
    scenarios = [scenario('default', { executor: 'constant-vus', vus: o.vus ?? 1, duration: o.duration })];
  } else {
    scenarios = [scenario('default', { executor: 'shared-iterations', vus: o.vus ?? 1, iterations: o.iterations ?? 1 })];
  }
  const thresholds: Record<string, string[]> = {};
  for (const [metric, list] of Object.entries((o.thresholds ?? {}) as Record<string, unknown>)) {
    thresholds[metric] = (Array.isArray(list) ? list : [list]).map((t, i) => {
      if (typeof t === 'string') return t;
      const obj = t as Record<string, unknown>;
      for (const key of Object.keys(obj)) if (key !== 'threshold') throw new K6Unsupported(`options.thresholds['${metric}'][${i}].${key}`);
      return String(obj.threshold);
    });
  }
  return {
    scenarios,
    thresholds,
    summaryTrendStats: (o.summaryTrendStats as string[] | undefined) ?? DEFAULT_TREND_STATS,
    maxRedirects: o.maxRedirects === undefined ? 10 : positiveInt(o.maxRedirects, 'options.maxRedirects', 0),
    noCookiesReset: o.noCookiesReset === true,
    tags: stringMap(o.tags, 'options.tags'),
  };
}

/** How long a scenario can run at most, graceful stop included: the bound of the whole run. */
export function scenarioSpan(s: Scenario): number {
  switch (s.executor) {
    case 'constant-vus':
    case 'constant-arrival-rate':
      return s.startTime + s.duration + s.gracefulStop;
    case 'ramping-arrival-rate':
      return s.startTime + s.stages.reduce((a, st) => a + st.duration, 0) + s.gracefulStop;
    default:
      return s.startTime + s.maxDuration + s.gracefulStop;
  }
}

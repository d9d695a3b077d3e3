/**
 * The built-in metrics the runner records, k6's four metric types, and threshold evaluation. Samples are kept
 * (value + interned tag set) so that thresholds with tag selectors (`http_req_duration{name:login}`) and the
 * `{ expected_response:true }` sub-metric are computed exactly; the request cap bounds their number.
 */
import { K6Unsupported } from './refusal.ts';

export type MetricType = 'trend' | 'rate' | 'counter' | 'gauge';
export type Tags = Record<string, string>;

/** The metrics this runner records, by k6 name. A threshold on any other metric is refused. */
export const BUILTIN: Record<string, MetricType> = {
  checks: 'rate',
  dropped_iterations: 'counter',
  group_duration: 'trend',
  http_req_duration: 'trend',
  http_req_failed: 'rate',
  http_req_waiting: 'trend',
  http_reqs: 'counter',
  iteration_duration: 'trend',
  iterations: 'counter',
  vus: 'gauge',
  vus_max: 'gauge',
  ws_connecting: 'trend',
  ws_msgs_received: 'counter',
  ws_msgs_sent: 'counter',
  ws_session_duration: 'trend',
  ws_sessions: 'counter',
};

/** Metrics whose values are durations in milliseconds (formatted as such in the summary). */
export const TIME_METRICS = new Set([
  'group_duration',
  'http_req_duration',
  'http_req_waiting',
  'iteration_duration',
  'ws_connecting',
  'ws_session_duration',
]);

class Series {
  readonly values: number[] = [];
  readonly tagIds: number[] = [];
}

export interface Aggregate {
  count: number;
  sum: number;
  values: number[];
  nonZero: number;
  last: number;
  min: number;
  max: number;
}

export class MetricStore {
  readonly #series = new Map<string, Series>();
  readonly #tagSets: Tags[] = [];
  readonly #tagIndex = new Map<string, number>();

  add(metric: string, value: number, tags: Tags = {}): void {
    let series = this.#series.get(metric);
    if (!series) {
      series = new Series();
      this.#series.set(metric, series);
    }
    const key = JSON.stringify(tags);
    let id = this.#tagIndex.get(key);
    if (id === undefined) {
      id = this.#tagSets.push(tags) - 1;
      this.#tagIndex.set(key, id);
    }
    series.values.push(value);
    series.tagIds.push(id);
  }

  has(metric: string): boolean {
    return this.#series.has(metric);
  }

  /** The distinct tag sets a metric's samples carry, in first-seen order. */
  distinctTags(metric: string): Tags[] {
    const ids = new Set(this.#series.get(metric)?.tagIds ?? []);
    return [...ids].map((id) => this.#tagSets[id]!);
  }

  names(): string[] {
    return [...this.#series.keys()].sort();
  }

  /** The samples of a metric whose tags include every selector pair. */
  aggregate(metric: string, selector: Tags = {}): Aggregate {
    const series = this.#series.get(metric);
    const pairs = Object.entries(selector);
    const values: number[] = [];
    if (series) {
      const matching = this.#tagSets.map((t) => pairs.every(([k, v]) => t[k] === v));
      for (let i = 0; i < series.values.length; i++) if (matching[series.tagIds[i]!]) values.push(series.values[i]!);
    }
    values.sort((a, b) => a - b);
    let sum = 0;
    let nonZero = 0;
    for (const v of values) {
      sum += v;
      if (v !== 0) nonZero++;
    }
    const last = series && values.length > 0 ? series.values[series.values.length - 1]! : 0;
    return { count: values.length, sum, values, nonZero, last, min: values[0] ?? 0, max: values.at(-1) ?? 0 };
  }
}

/** k6's percentile: linear interpolation between the closest ranks of the sorted samples. */
export function percentile(sorted: readonly number[], pct: number): number {
  if (sorted.length === 0) return 0;
  const i = (pct / 100) * (sorted.length - 1);
  const lo = Math.floor(i);
  if (lo >= sorted.length - 1) return sorted.at(-1)!;
  return sorted[lo]! + (sorted[lo + 1]! - sorted[lo]!) * (i - lo);
}

/** One trend statistic by its k6 name (avg, min, med, max, count, p(N)). */
export function trendStat(agg: Aggregate, stat: string): number {
  const p = /^p\((\d+(?:\.\d+)?)\)$/.exec(stat);
  if (p) return percentile(agg.values, Number(p[1]));
  switch (stat) {
    case 'avg':
      return agg.count === 0 ? 0 : agg.sum / agg.count;
    case 'min':
      return agg.min;
    case 'max':
      return agg.max;
    case 'med':
      return percentile(agg.values, 50);
    case 'count':
      return agg.count;
    default:
      throw new K6Unsupported(`trend statistic '${stat}'`, 'avg, min, med, max, count, p(N)');
  }
}

/** `http_req_duration{name:login,method:POST}` → metric name and tag selector. */
export function parseMetricKey(key: string): { metric: string; selector: Tags } {
  const m = /^([\w.]+)(?:\{(.*)\})?$/.exec(key.trim());
  if (!m) throw new Error(`options.thresholds: '${key}' is not a metric name with an optional {tag:value} selector`);
  const selector: Tags = {};
  for (const part of (m[2] ?? '').split(',').filter((s) => s.trim())) {
    const colon = part.indexOf(':');
    if (colon < 0) throw new Error(`options.thresholds: '${key}': selector '${part}' is not tag:value`);
    selector[part.slice(0, colon).trim()] = part.slice(colon + 1).trim();
  }
  return { metric: m[1]!, selector };
}

export interface ThresholdResult {
  metricKey: string;
  expression: string;
  /** The aggregate the expression compared, e.g. `p(95)` and its value. */
  stat: string;
  actual: number;
  ok: boolean;
}

const OPS: Record<string, (a: number, b: number) => boolean> = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '==': (a, b) => a === b,
  '===': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};
const STATS_BY_TYPE: Record<MetricType, RegExp> = {
  trend: /^(avg|min|max|med|p\(\d+(\.\d+)?\))$/,
  rate: /^rate$/,
  counter: /^(count|rate)$/,
  gauge: /^value$/,
};

/** Checks every threshold's syntax and metric before the run starts (k6 refuses bad thresholds at start too). */
export function validateThresholds(thresholds: Record<string, string[]>): void {
  for (const [key, list] of Object.entries(thresholds)) {
    const { metric } = parseMetricKey(key);
    const type = BUILTIN[metric];
    if (!type)
      throw new K6Unsupported(`options.thresholds on metric '${metric}'`, `this runner records: ${Object.keys(BUILTIN).join(', ')}`);
    for (const expr of list) {
      const stat = parseExpression(expr, key).stat;
      if (!STATS_BY_TYPE[type].test(stat)) throw new Error(`options.thresholds['${key}']: '${stat}' does not apply to a ${type} metric`);
    }
  }
}

function parseExpression(expr: string, key: string): { stat: string; op: string; bound: number } {
  const m = /^\s*(avg|min|max|med|count|rate|value|p\(\d+(?:\.\d+)?\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expr);
  if (!m) throw new Error(`options.thresholds['${key}']: '${expr}' is not a k6 threshold expression (like 'p(95)<200' or 'rate<0.01')`);
  return { stat: m[1]!, op: m[2]!, bound: Number(m[3]) };
}

/** The value a threshold statistic has for a metric (rate of a counter is per second of `elapsedMs`). */
export function statValue(store: MetricStore, key: string, stat: string, elapsedMs: number): number {
  const { metric, selector } = parseMetricKey(key);
  const agg = store.aggregate(metric, selector);
  switch (BUILTIN[metric]) {
    case 'rate':
      return agg.count === 0 ? 0 : agg.nonZero / agg.count;
    case 'counter':
      return stat === 'count' ? agg.sum : agg.sum / (elapsedMs / 1000);
    case 'gauge':
      return agg.last;
    default:
      return trendStat(agg, stat);
  }
}

export function evaluateThresholds(store: MetricStore, thresholds: Record<string, string[]>, elapsedMs: number): ThresholdResult[] {
  const results: ThresholdResult[] = [];
  for (const [key, list] of Object.entries(thresholds)) {
    for (const expression of list) {
      const { stat, op, bound } = parseExpression(expression, key);
      const actual = statValue(store, key, stat, elapsedMs);
      results.push({ metricKey: key, expression, stat, actual, ok: OPS[op]!(actual, bound) });
    }
  }
  return results;
}

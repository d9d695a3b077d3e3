/**
 * The end-of-test output in k6's formats: the text summary (k6 v1's compact layout: THRESHOLDS, then TOTAL
 * RESULTS with checks and metrics by category) and the `--summary-export` JSON (k6's legacy export: root_group
 * with groups and checks, metrics with their stats, and thresholds whose value is `true` when the threshold
 * FAILED, as k6 writes it).
 */
import { createHash } from 'node:crypto';
import { BUILTIN, evaluateThresholds, type MetricStore, type ThresholdResult, TIME_METRICS, trendStat } from './metrics.ts';

export interface SummaryInput {
  store: MetricStore;
  thresholds: Record<string, string[]>;
  trendStats: string[];
  elapsedMs: number;
}

export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1) return `${(ms * 1000).toFixed(2)}µs`;
  if (ms < 1000) return `${ms.toFixed(2)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  return `${Math.floor(ms / 60_000)}m${((ms % 60_000) / 1000).toFixed(1)}s`;
}

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(6));

interface CheckRow {
  group: string;
  name: string;
  passes: number;
  fails: number;
}

function checkRows(store: MetricStore): CheckRow[] {
  const rows = new Map<string, CheckRow>();
  for (const key of tagValues(store, 'checks')) {
    const [group, name] = JSON.parse(key) as [string, string];
    const agg = store.aggregate('checks', { group, check: name });
    rows.set(key, { group, name, passes: agg.nonZero, fails: agg.count - agg.nonZero });
  }
  return [...rows.values()];
}

/** The distinct (group, check) pairs of the checks metric, in first-seen order. */
function tagValues(store: MetricStore, metric: string): string[] {
  return store.distinctTags(metric).map((t) => JSON.stringify([t.group ?? '', t.check ?? '']));
}

function metricLine(store: MetricStore, key: string, selector: Record<string, string>, trendStats: string[], elapsedMs: number): string {
  const agg = store.aggregate(key, selector);
  const type = BUILTIN[key];
  switch (type) {
    case 'trend':
      return trendStats
        .map((stat) => {
          const v = trendStat(agg, stat);
          return `${stat}=${TIME_METRICS.has(key) ? formatDuration(v) : num(v)}`;
        })
        .join(' ');
    case 'rate':
      return `${pct(agg.count ? agg.nonZero / agg.count : 0)} ${agg.nonZero} out of ${agg.count}`;
    case 'gauge':
      return `${agg.last} min=${agg.min} max=${agg.max}`;
    default:
      return `${agg.sum} ${(agg.sum / (elapsedMs / 1000)).toFixed(6)}/s`;
  }
}

const dots = (label: string, width = 40) => `${label}${'.'.repeat(Math.max(3, width - label.length))}:`;
const CATEGORIES: [string, RegExp][] = [
  ['HTTP', /^http_/],
  ['EXECUTION', /^(dropped_iterations|group_duration|iteration|vus)/],
  ['WEBSOCKET', /^ws_/],
];

export function formatSummary(input: SummaryInput, results: ThresholdResult[]): string {
  const { store, trendStats, elapsedMs } = input;
  const out: string[] = [''];
  if (results.length > 0) {
    out.push('  █ THRESHOLDS', '');
    for (const key of [...new Set(results.map((r) => r.metricKey))]) {
      out.push(`    ${key}`);
      for (const r of results.filter((x) => x.metricKey === key)) {
        const value =
          BUILTIN[key.split('{')[0]!] === 'rate'
            ? pct(r.actual)
            : TIME_METRICS.has(key.split('{')[0]!)
              ? formatDuration(r.actual)
              : num(r.actual);
        out.push(`    ${r.ok ? '✓' : '✗'} '${r.expression}' ${r.stat}=${value}`);
      }
      out.push('');
    }
    out.push('');
  }
  out.push('  █ TOTAL RESULTS', '');
  const checks = store.aggregate('checks');
  if (checks.count > 0) {
    out.push(`    ${dots('checks_total')} ${checks.count} ${(checks.count / (elapsedMs / 1000)).toFixed(6)}/s`);
    out.push(`    ${dots('checks_succeeded')} ${pct(checks.nonZero / checks.count)} ${checks.nonZero} out of ${checks.count}`);
    out.push(
      `    ${dots('checks_failed')} ${pct(1 - checks.nonZero / checks.count)} ${checks.count - checks.nonZero} out of ${checks.count}`,
      '',
    );
    let group: string | undefined;
    for (const row of checkRows(store)) {
      if (row.group !== group) {
        group = row.group;
        if (group) out.push(`    █ ${group.split('::').filter(Boolean).join(' › ')}`);
      }
      const total = row.passes + row.fails;
      out.push(`    ${row.fails === 0 ? '✓' : '✗'} ${row.name}`);
      if (row.fails > 0) out.push(`      ↳  ${Math.floor((row.passes / total) * 100)}% — ✓ ${row.passes} / ✗ ${row.fails}`);
    }
    out.push('');
  }
  for (const [title, re] of CATEGORIES) {
    const names = store.names().filter((n) => re.test(n));
    if (names.length === 0) continue;
    out.push(`    ${title}`);
    for (const name of names) {
      out.push(`    ${dots(name)} ${metricLine(store, name, {}, trendStats, elapsedMs)}`);
      if (name === 'http_req_duration')
        out.push(
          `    ${dots('  { expected_response:true }')} ${metricLine(store, name, { expected_response: 'true' }, trendStats, elapsedMs)}`,
        );
    }
    out.push('');
  }
  out.push(`  running (${formatDuration(elapsedMs)}), runner: tiergate k6 runner (node ${process.version})`, '');
  return out.join('\n');
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

interface ExportGroup {
  name: string;
  path: string;
  id: string;
  groups: Record<string, ExportGroup>;
  checks: Record<string, { name: string; path: string; id: string; passes: number; fails: number }>;
}

/** k6's `--summary-export` document. */
export function summaryExport(input: SummaryInput, results: ThresholdResult[]): unknown {
  const { store, trendStats, elapsedMs } = input;
  const root: ExportGroup = { name: '', path: '', id: md5(''), groups: {}, checks: {} };
  for (const row of checkRows(store)) {
    let g = root;
    let path = '';
    for (const name of row.group.split('::').filter(Boolean)) {
      path += `::${name}`;
      g = g.groups[name] ??= { name, path, id: md5(path), groups: {}, checks: {} };
    }
    const checkPath = `${row.group}::${row.name}`;
    g.checks[row.name] = { name: row.name, path: checkPath, id: md5(checkPath), passes: row.passes, fails: row.fails };
  }
  const metrics: Record<string, Record<string, unknown>> = {};
  const keys = new Set([...store.names(), ...results.map((r) => r.metricKey)]);
  for (const key of keys) {
    const [metric = key, sel] = key.split('{') as [string, string?];
    const selector = Object.fromEntries(
      (sel ?? '')
        .replace(/}$/, '')
        .split(',')
        .filter(Boolean)
        .map((p) => [p.slice(0, p.indexOf(':')).trim(), p.slice(p.indexOf(':') + 1).trim()]),
    );
    const agg = store.aggregate(metric, selector);
    const m: Record<string, unknown> = {};
    switch (BUILTIN[metric]) {
      case 'trend':
        for (const stat of trendStats) m[stat] = trendStat(agg, stat);
        break;
      case 'rate':
        Object.assign(m, { passes: agg.nonZero, fails: agg.count - agg.nonZero, value: agg.count ? agg.nonZero / agg.count : 0 });
        break;
      case 'gauge':
        Object.assign(m, { value: agg.last, min: agg.min, max: agg.max });
        break;
      default:
        Object.assign(m, { count: agg.sum, rate: agg.sum / (elapsedMs / 1000) });
    }
    const own = results.filter((r) => r.metricKey === key);
    // k6's export marks a threshold `true` when it failed.
    if (own.length > 0) m.thresholds = Object.fromEntries(own.map((r) => [r.expression, !r.ok]));
    metrics[key] = m;
  }
  return { root_group: root, metrics, state: { isStdOutTTY: false, isStdErrTTY: false, testRunDurationMs: elapsedMs } };
}

export function thresholdResults(input: SummaryInput): ThresholdResult[] {
  return evaluateThresholds(input.store, input.thresholds, input.elapsedMs);
}

import { describe, expect, it } from 'vitest';
import { CookieJar } from '../loadtest/k6-runner/cookie-jar.ts';
import { evaluateThresholds, MetricStore, percentile, validateThresholds } from '../loadtest/k6-runner/metrics.ts';
import { parseDuration, planFrom } from '../loadtest/k6-runner/options.ts';
import { summaryExport } from '../loadtest/k6-runner/summary.ts';

// The runner's pure parts: what k6 would compute from the same samples and options.

describe('k6 runner metrics', () => {
  it("percentiles interpolate between the closest ranks, as k6's trend sink", () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(sorted, 50)).toBeCloseTo(5.5);
    expect(percentile(sorted, 95)).toBeCloseTo(9.55);
    expect(percentile(sorted, 100)).toBe(10);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 95)).toBe(0);
  });

  it('thresholds with a tag selector see only the matching samples', () => {
    const store = new MetricStore();
    for (let i = 1; i <= 100; i++) store.add('http_req_duration', i, { name: 'cart' });
    store.add('http_req_duration', 5000, { name: 'login' });
    const results = evaluateThresholds(store, { 'http_req_duration{name:cart}': ['p(99)<100'], http_req_duration: ['max<1000'] }, 1000);
    expect(results.map((r) => [r.metricKey, r.ok])).toEqual([
      ['http_req_duration{name:cart}', true],
      ['http_req_duration', false],
    ]);
  });

  it('rates count the non-zero samples; an unknown metric or a statistic of the wrong type is rejected', () => {
    const store = new MetricStore();
    for (const v of [1, 1, 1, 0]) store.add('checks', v, {});
    expect(evaluateThresholds(store, { checks: ['rate>=0.75', 'rate==1'] }, 1000).map((r) => r.ok)).toEqual([true, false]);
    expect(() => validateThresholds({ http_req_blocked: ['p(95)<1'] })).toThrow("options.thresholds on metric 'http_req_blocked'");
    expect(() => validateThresholds({ checks: ['p(95)<1'] })).toThrow("'p(95)' does not apply to a rate metric");
    expect(() => validateThresholds({ checks: ['rate less than 1'] })).toThrow('is not a k6 threshold expression');
  });

  it("the summary export marks a crossed threshold true, as k6's --summary-export", () => {
    const store = new MetricStore();
    store.add('checks', 1, { group: '::login', check: 'status 200' });
    store.add('checks', 0, { group: '::login', check: 'status 200' });
    const thresholds = { checks: ['rate==1'] };
    const input = { store, thresholds, trendStats: ['avg', 'p(95)'], elapsedMs: 1000 };
    const doc = summaryExport(input, evaluateThresholds(store, thresholds, 1000)) as {
      metrics: Record<string, unknown>;
      root_group: { groups: Record<string, { checks: Record<string, unknown> }> };
    };
    expect(doc.metrics.checks).toEqual({ passes: 1, fails: 1, value: 0.5, thresholds: { 'rate==1': true } });
    expect(doc.root_group.groups.login?.checks['status 200']).toMatchObject({ path: '::login::status 200', passes: 1, fails: 1 });
  });
});

describe('k6 runner options', () => {
  it('parses k6 durations', () => {
    expect(parseDuration('1m30s', 'd')).toBe(90_000);
    expect(parseDuration('250ms', 'd')).toBe(250);
    expect(parseDuration('1h', 'd')).toBe(3_600_000);
    expect(() => parseDuration('90', 'options.duration')).toThrow("options.duration: '90' is not a k6 duration");
  });

  it("maps k6's shortcuts to the executors k6 uses for them", () => {
    expect(planFrom({ vus: 3, duration: '10s' }).scenarios[0]).toMatchObject({ executor: 'constant-vus', vus: 3, duration: 10_000 });
    expect(planFrom({ iterations: 7 }).scenarios[0]).toMatchObject({ executor: 'shared-iterations', vus: 1, iterations: 7 });
    expect(planFrom(undefined).scenarios[0]).toMatchObject({ executor: 'shared-iterations', iterations: 1 });
  });

  it('refuses an unknown scenario key, a threshold option and an option, by name', () => {
    expect(() => planFrom({ scenarios: { s: { executor: 'constant-vus', vus: 1, duration: '1s', rate: 5 } } })).toThrow(
      'options.scenarios.s.rate (for executor constant-vus) is not implemented',
    );
    expect(() => planFrom({ thresholds: { checks: [{ threshold: 'rate==1', abortOnFail: true }] } })).toThrow(
      "options.thresholds['checks'][0].abortOnFail is not implemented",
    );
    expect(() => planFrom({ stages: [] })).toThrow('options.stages is not implemented');
  });
});

describe('k6 runner cookie jar', () => {
  it('sends cookies by host and path, and forgets one set with Max-Age=0', () => {
    const jar = new CookieJar();
    jar.storeFromResponse('http://127.0.0.1:8080/login', ['tg.sid=abc; Path=/; HttpOnly', 'pref=x; Path=/cart']);
    expect(jar.headerFor('http://127.0.0.1:8080/')).toBe('tg.sid=abc');
    expect(jar.headerFor('http://127.0.0.1:8080/cart')).toBe('tg.sid=abc; pref=x');
    expect(jar.headerFor('http://127.0.0.2:8080/')).toBe('');
    jar.storeFromResponse('http://127.0.0.1:8080/logout', ['tg.sid=; Path=/; Max-Age=0']);
    expect(jar.cookiesForURL('http://127.0.0.1:8080/cart')).toEqual({ pref: ['x'] });
    jar.reset();
    expect(jar.headerFor('http://127.0.0.1:8080/cart')).toBe('');
  });
});

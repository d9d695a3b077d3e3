import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { chmod, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTgError } from '@tiergate/errors';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CHECK_CHANNEL,
  type CheckEvent,
  type Checker,
  type CheckResult,
  type CheckTarget,
  type HealthChange,
  HealthMonitor,
  HttpChecker,
  jitteredDelay,
  TRANSITION_CHANNEL,
  targetKey,
} from '../src/index.ts';
import { httpServer, type TestServer, trackTimers, waitFor } from './helpers.ts';

/** A real upstream whose health endpoint answers `status`, counting the requests it gets. */
async function flipServer(): Promise<TestServer & { status: number; requests: number }> {
  const state = { status: 200, requests: 0 };
  const srv = await httpServer((_req, res) => {
    state.requests += 1;
    res.statusCode = state.status;
    res.end();
  });
  return Object.assign(state, srv);
}

const at = (port: number): CheckTarget => ({ host: '127.0.0.1', port });
const fast = { intervalMs: 20, timeoutMs: 1000, jitter: 0 } as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('HealthMonitor', () => {
  const channelEvents: HealthChange[] = [];
  const onChannel = (msg: unknown) => channelEvents.push(msg as HealthChange);
  beforeAll(() => subscribe(TRANSITION_CHANNEL, onChannel));
  afterAll(() => unsubscribe(TRANSITION_CHANNEL, onChannel));
  afterEach(() => {
    channelEvents.length = 0;
  });

  it('goes down after `fall` failures and up after `rise` successes, via onChange and the diagnostics channel', async () => {
    await using srv = await flipServer();
    const changes: { change: HealthChange; failures: number; successes: number }[] = [];
    let clock = 1000;
    await using monitor = new HealthMonitor({
      name: 'flip',
      spec: { kind: 'http', path: '/health', ...fast, rise: 2, fall: 3 },
      targets: [at(srv.port)],
      now: () => ++clock,
      onChange: (change) => {
        const s = monitor.status()[0]!;
        changes.push({ change, failures: s.consecutiveFailures, successes: s.consecutiveSuccesses });
      },
    });
    monitor.start();
    await waitFor(() => monitor.status()[0]!.checks >= 3, 'three healthy checks');
    expect(changes).toEqual([]);
    expect(monitor.isHealthy(at(srv.port))).toBe(true);

    srv.status = 500;
    await waitFor(() => changes.length === 1, 'the down transition');
    srv.status = 200;
    await waitFor(() => changes.length === 2, 'the up transition');

    expect(changes.map((c) => [c.change.previous, c.change.healthy, c.failures, c.successes])).toEqual([
      [true, false, 3, 0],
      [false, true, 0, 2],
    ]);
    expect(changes[0]!.change.result).toMatchObject({ ok: false, detail: 'HTTP 500 not in 200-399' });
    expect(changes[1]!.change.result).toMatchObject({ ok: true, detail: 'HTTP 200' });
    const mine = channelEvents.filter((e) => e.monitor === 'flip');
    expect(mine).toEqual(changes.map((c) => c.change));
    const s = monitor.status()[0]!;
    expect(s.lastChangeAt).toBe(changes[1]!.change.at);
    expect(s.failures).toBeGreaterThanOrEqual(3);
    expect(s.checks).toBeGreaterThan(s.failures);
  });

  it("with initial 'down' a new target is unhealthy until it rises, and is checked at once", async () => {
    await using srv = await flipServer();
    await using monitor = new HealthMonitor({
      spec: { kind: 'tcp', intervalMs: 60_000, timeoutMs: 1000, rise: 1, fall: 1, initial: 'down' },
      targets: [at(srv.port)],
    });
    expect(monitor.status()[0]).toMatchObject({ healthy: false, checks: 0, lastResult: null, lastChangeAt: null });
    monitor.start();
    // The interval is a minute: only an immediate first check can bring it up within the wait.
    await waitFor(() => monitor.isHealthy(at(srv.port)) === true, 'the first check');
    expect(monitor.status()[0]).toMatchObject({ healthy: true, checks: 1, lastResult: { ok: true, detail: 'connected' } });
  });

  it('setTargets adds targets (checked at once, initial state) and removes others (no more checks)', async () => {
    await using a = await flipServer();
    await using b = await flipServer();
    b.status = 503;
    await using monitor = new HealthMonitor({ spec: { kind: 'http', path: '/', ...fast, rise: 1, fall: 1 }, targets: [at(a.port)] });
    monitor.start();
    await waitFor(() => a.requests >= 2, 'checks of a');

    monitor.setTargets([at(a.port), at(b.port)]);
    expect(monitor.status().map((s) => [s.target.port, s.healthy])).toEqual([
      [a.port, true],
      [b.port, true],
    ]);
    await waitFor(() => monitor.isHealthy(at(b.port)) === false, 'b to go down');
    expect(channelEvents.map((e) => [e.target.port, e.healthy])).toEqual([[b.port, false]]);

    const checksOfA = monitor.status()[0]!.checks;
    monitor.setTargets([at(b.port)]);
    expect(monitor.status().map((s) => s.target.port)).toEqual([b.port]);
    expect(monitor.isHealthy(at(a.port))).toBeUndefined();
    const requestsOfA = a.requests;
    const bBefore = b.requests;
    await waitFor(() => b.requests >= bBefore + 3, 'b to keep being checked');
    // Several intervals passed: a, removed, got at most the one check that was in flight at removal.
    expect(a.requests - requestsOfA).toBeLessThanOrEqual(1);
    expect(checksOfA).toBeGreaterThan(0);
  });

  it('never runs two checks of one target at once, even when it is removed and re-added mid-check', async () => {
    const inFlight = new Map<number, number>();
    let maxInFlight = 0;
    let started = 0;
    await using srv = await httpServer((_req, res) => setTimeout(() => res.end(), 40));
    const http = new HttpChecker({ kind: 'http', path: '/' });
    /** Wraps the real checker to count overlapping checks per target port. */
    const counting: Checker = {
      kind: 'http',
      async check(target, timeoutMs, signal): Promise<CheckResult> {
        started += 1;
        const n = (inFlight.get(target.port) ?? 0) + 1;
        inFlight.set(target.port, n);
        maxInFlight = Math.max(maxInFlight, n);
        try {
          return await http.check(target, timeoutMs, signal);
        } finally {
          inFlight.set(target.port, (inFlight.get(target.port) ?? 1) - 1);
        }
      },
    };
    try {
      await using monitor = new HealthMonitor({
        spec: { kind: 'http', path: '/', intervalMs: 1, timeoutMs: 1000, jitter: 0 },
        checker: counting,
      });
      monitor.setTargets([at(srv.port)]);
      monitor.start();
      for (let i = 0; i < 5; i++) {
        await waitFor(() => (inFlight.get(srv.port) ?? 0) === 1, 'a check in flight');
        monitor.setTargets([]);
        monitor.setTargets([at(srv.port)]);
      }
      await waitFor(() => started >= 10, 'ten checks');
    } finally {
      await http.close();
    }
    expect(maxInFlight).toBe(1);
  });

  it('stop() aborts and awaits the check in flight and clears every timer', async () => {
    let requests = 0;
    await using hanging = await httpServer(() => {
      requests += 1;
    });
    await using srv = await flipServer();
    using timers = trackTimers();
    // A minute's interval and timeout: a timer stop() failed to clear, or a check it failed to abort, is still pending.
    const monitor = new HealthMonitor({
      spec: { kind: 'http', path: '/', intervalMs: 60_000, timeoutMs: 60_000, jitter: 0 },
      targets: [at(hanging.port), at(srv.port)],
    });
    monitor.start();
    await waitFor(() => requests === 1 && monitor.status()[1]!.checks === 1, 'a hanging check and a scheduled one');
    const stopping = monitor.stop();
    expect(monitor.stop()).toBe(stopping);
    await stopping;
    expect(monitor.status()[0]).toMatchObject({ checks: 0, lastResult: null });
    expect(await timers.pending()).toBe(0);
    expect(() => monitor.start()).toThrow(/after stop/);
  });

  it('runs no check after stop()', async () => {
    await using srv = await flipServer();
    const monitor = new HealthMonitor({ spec: { kind: 'http', path: '/', ...fast }, targets: [at(srv.port)] });
    monitor.start();
    await waitFor(() => srv.requests >= 2, 'some checks');
    await monitor.stop();
    const after = srv.requests;
    await sleep(5 * fast.intervalMs);
    expect(srv.requests).toBe(after);
  });

  it('checks the spec port instead of the target port when one is given', async () => {
    await using srv = await flipServer();
    await using monitor = new HealthMonitor({ spec: { kind: 'http', path: '/', ...fast, port: srv.port }, targets: [at(1)] });
    monitor.start();
    await waitFor(() => monitor.status()[0]!.checks >= 1, 'a check');
    expect(monitor.status()[0]).toMatchObject({ target: at(1), lastResult: { ok: true } });
    expect(srv.requests).toBeGreaterThanOrEqual(1);
  });

  it('draws one random number per scheduled check for the jitter', async () => {
    await using srv = await flipServer();
    let draws = 0;
    await using monitor = new HealthMonitor({
      spec: { kind: 'tcp', intervalMs: 20, timeoutMs: 1000, jitter: 0.5 },
      targets: [at(srv.port)],
      random: () => {
        draws += 1;
        return 0.5;
      },
    });
    monitor.start();
    await waitFor(() => monitor.status()[0]!.checks >= 3, 'three checks');
    await monitor.stop();
    expect(draws).toBe(monitor.status()[0]!.checks);
  });

  it('follows a misc_dynamic weight through onCheck and CHECK_CHANNEL without a transition', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tg-health-weight-'));
    await chmod(dir, 0o755); // the check runs as nobody when the tests run as root
    const onChannelCheck = (msg: unknown) => channelChecks.push(msg as CheckEvent);
    const channelChecks: CheckEvent[] = [];
    subscribe(CHECK_CHANNEL, onChannelCheck);
    try {
      await writeFile(join(dir, 'code'), '5');
      const weights: (number | undefined)[] = [];
      const changes: HealthChange[] = [];
      await using monitor = new HealthMonitor({
        name: 'weights',
        spec: { kind: 'command', argv: ['sh', '-c', `exit $(cat ${join(dir, 'code')})`], dynamicWeight: true, ...fast },
        targets: [at(9)],
        onCheck: (c) => weights.push(c.result.weight),
        onChange: (c) => changes.push(c),
      });
      monitor.start();
      await waitFor(() => weights.length >= 1, 'a first weight');
      // Replace atomically: a check reading a half-written file would see no code at all.
      await writeFile(join(dir, 'code.new'), '10');
      await rename(join(dir, 'code.new'), join(dir, 'code'));
      await waitFor(() => weights.at(-1) === 8, 'the new weight');
      await monitor.stop();
      expect(weights[0]).toBe(3);
      expect(new Set(weights)).toEqual(new Set([3, 8]));
      expect(changes).toEqual([]);
      expect(channelChecks.filter((c) => c.monitor === 'weights').map((c) => c.result.weight)).toEqual(weights);
    } finally {
      unsubscribe(CHECK_CHANNEL, onChannelCheck);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keys targets by host and port, bracketing IPv6', () => {
    expect([targetKey({ host: '10.0.0.1', port: 80 }), targetKey({ host: 'fd00::1', port: 80 })]).toEqual(['10.0.0.1:80', '[fd00::1]:80']);
  });

  it('rejects invalid timing with TG_CONFIG_INVALID', () => {
    expect.assertions(1);
    try {
      new HealthMonitor({ spec: { kind: 'tcp', rise: 0 } });
    } catch (err) {
      expect(isTgError(err, 'TG_CONFIG_INVALID')).toBe(true);
    }
  });
});

describe('jitteredDelay', () => {
  it.each([
    [1000, 0, 0.9, 1000],
    [1000, 0.1, 0, 900],
    [1000, 0.1, 0.5, 1000],
    [1000, 0.1, 0.99, 1098],
    [20, 0.5, 0, 10],
  ])('interval %i jitter %f random %f → %i', (interval, jitter, random, expected) => {
    expect(jitteredDelay(interval, jitter, random)).toBe(expected);
  });
});

/**
 * Runs a k6 script: reads its options in an init VU, starts the scenarios' VUs (worker threads) and drives them
 * with k6's executors, bounded by the scenarios' own durations, `maxDuration` and the runner's caps.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { Io } from './io.ts';
import { MetricStore, type Tags, validateThresholds } from './metrics.ts';
import { planFrom, type RunPlan, type Scenario, scenarioSpan } from './options.ts';
import { K6Unsupported } from './refusal.ts';
import type { IterateMessage, VuWorkerData } from './vu-worker.ts';

const WORKER = new URL('./vu-worker.ts', import.meta.url);

export interface RunOptions {
  /** file: URL of the script. */
  script: string;
  env: Record<string, string>;
  /** Hard bound of the whole run, whatever the script says. */
  maxDurationMs: number;
  /** Hard bound of the number of HTTP requests. */
  maxRequests: number;
  /** Where iteration errors are reported (k6 prints them as ERRO lines). */
  log: (line: string) => void;
}

export interface RunResult {
  plan: RunPlan;
  store: MetricStore;
  elapsedMs: number;
  /** Why the run stopped early (cap reached), if it did. */
  aborted?: string;
  iterationErrors: number;
}

type ScriptError = { type: 'refused' | 'error'; message: string };

class Vu {
  readonly id: number;
  readonly #worker: Worker;
  readonly #detach: () => Promise<void>;
  #pending: ((outcome: 'done' | 'interrupted') => void) | undefined;
  iter = 0;
  #stopped = false;

  private constructor(id: number, worker: Worker, detach: () => Promise<void>) {
    this.id = id;
    this.#worker = worker;
    this.#detach = detach;
  }

  get busy(): boolean {
    return this.#pending !== undefined;
  }

  /** Starts a VU thread and resolves once the script's init code ran. */
  static start(run: Run, id: number): Promise<Vu> {
    const signal = new SharedArrayBuffer(4);
    const req = new MessageChannel();
    const ev = new MessageChannel();
    const data: VuWorkerData = {
      script: run.options.script,
      vuId: id,
      env: run.options.env,
      signal,
      requests: req.port2,
      events: ev.port2,
      maxRedirects: run.plan?.maxRedirects ?? 10,
      noCookiesReset: run.plan?.noCookiesReset ?? false,
    };
    const worker = new Worker(WORKER, { workerData: data, transferList: [req.port2, ev.port2] });
    const detach = run.io.attach(req.port1, ev.port1, new Int32Array(signal));
    const vu = new Vu(id, worker, detach);
    return new Promise((resolve, reject) => {
      worker.on('message', (m: { type: string } & Record<string, unknown>) => {
        switch (m.type) {
          case 'ready':
            run.readyInfo ??= { exports: m.exports as string[], options: m.options as Record<string, unknown> };
            resolve(vu);
            break;
          case 'metric':
            run.store.add(m.metric as string, m.value as number, m.tags as Tags);
            break;
          case 'done':
            if (m.error) run.iterationError(m.error as string);
            run.store.add('iterations', 1, m.tags as Tags);
            run.store.add('iteration_duration', m.ms as number, m.tags as Tags);
            vu.#settle('done');
            break;
          case 'refused':
          case 'error':
            if (m.phase === 'init')
              reject(Object.assign(new Error(m.message as string), { name: m.type === 'refused' ? 'K6Unsupported' : 'ScriptError' }));
            else run.fail({ type: m.type, message: m.message as string });
            vu.#settle('interrupted');
            break;
        }
      });
      worker.on('error', (err) => {
        reject(err);
        run.fail({ type: 'error', message: `VU ${id} crashed: ${err.stack ?? err.message}` });
        vu.#settle('interrupted');
      });
    });
  }

  #settle(outcome: 'done' | 'interrupted'): void {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.(outcome);
  }

  iterate(message: Omit<IterateMessage, 'type' | 'iter'>): Promise<'done' | 'interrupted'> {
    const iter = this.iter++;
    return new Promise((resolve) => {
      this.#pending = resolve;
      this.#worker.postMessage({ type: 'iterate', iter, ...message } satisfies IterateMessage);
    });
  }

  /** Ends the thread, interrupting an iteration in progress (as k6 does after gracefulStop). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#settle('interrupted');
    await this.#worker.terminate();
    await this.#detach();
  }
}

class Run {
  readonly options: RunOptions;
  readonly store = new MetricStore();
  readonly io: Io;
  plan: RunPlan | undefined;
  readyInfo: { exports: string[]; options: Record<string, unknown> } | undefined;
  readonly vus = new Set<Vu>();
  #nextVu = 1;
  stopped = false;
  abortReason: string | undefined;
  scriptError: ScriptError | undefined;
  iterationErrors = 0;
  readonly #stop: Promise<void>;
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopNow!: () => void;

  constructor(options: RunOptions) {
    this.options = options;
    this.io = new Io(this.store, {
      maxRequests: options.maxRequests,
      onCap: () => this.abort(`the request cap (${options.maxRequests}) was reached`),
    });
    this.#stop = new Promise((r) => {
      this.#stopNow = r;
    });
  }

  iterationError(message: string): void {
    // As k6: the iteration ends, the error is logged, the VU goes on with its next iteration. The first few are printed.
    if (++this.iterationErrors <= 10) this.options.log(`ERRO iteration error: ${message.split('\n').slice(0, 3).join(' | ')}`);
  }

  fail(error: ScriptError): void {
    this.scriptError ??= error;
    this.abort(error.message);
  }

  abort(reason: string): void {
    if (this.stopped) return;
    this.abortReason = reason;
    this.stopped = true;
    this.#stopNow();
  }

  /** Sleeps, but wakes at once when the run is stopped. */
  wait(ms: number): Promise<void> {
    return Promise.race([
      new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => {
            this.#timers.delete(timer);
            resolve();
          },
          Math.max(0, ms),
        );
        this.#timers.add(timer);
      }),
      this.#stop,
    ]);
  }

  /** Clears the pending waits (a scenario's maxDuration can be minutes away: it must not hold the process). */
  clearTimers(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  async newVu(): Promise<Vu> {
    const vu = await Vu.start(this, this.#nextVu++);
    this.vus.add(vu);
    this.store.add('vus_max', this.vus.size, {});
    return vu;
  }

  async stopVus(vus: Iterable<Vu>): Promise<void> {
    await Promise.all([...vus].map((vu) => vu.stop()));
  }
}

/** Iterations of one scenario on its VUs until `keepGoing` says no; interrupted after the graceful stop. */
async function driveLoops(run: Run, s: Scenario, vus: Vu[], keepGoing: (vu: Vu) => boolean, end: number): Promise<void> {
  const message = iterateMessage(run, s);
  let active = vus.length;
  run.store.add('vus', active, {});
  const loops = vus.map(async (vu) => {
    while (!run.stopped && keepGoing(vu)) if ((await vu.iterate(message)) === 'interrupted') break;
    run.store.add('vus', --active, {});
  });
  await Promise.race([Promise.all(loops), run.wait(end + s.gracefulStop - performance.now())]);
}

function iterateMessage(run: Run, s: Scenario): Omit<IterateMessage, 'type' | 'iter'> {
  return { exec: s.exec, scenario: s.name, env: s.env, tags: { ...run.plan!.tags, ...s.tags, scenario: s.name } };
}

/** Iterations that should have started `t` ms into an arrival-rate scenario (the first at t = 0 when the rate is > 0). */
function arrivals(s: Extract<Scenario, { executor: 'constant-arrival-rate' | 'ramping-arrival-rate' }>, t: number): number {
  if (s.executor === 'constant-arrival-rate') return Math.floor((t * s.rate) / s.timeUnit) + 1;
  // Integral of the piecewise linear rate (iterations per timeUnit) from 0 to t.
  let integral = 0;
  let from = s.startRate;
  let left = t;
  for (const stage of s.stages) {
    const span = Math.min(left, stage.duration);
    const to = from + ((stage.target - from) * span) / (stage.duration || 1);
    integral += ((from + to) / 2) * (span / s.timeUnit);
    left -= span;
    from = stage.target;
    if (left <= 0) break;
  }
  return Math.floor(integral + 1e-9) + (s.startRate > 0 ? 1 : 0);
}

async function runScenario(run: Run, s: Scenario, vus: Vu[], t0: number): Promise<void> {
  await driveScenario(run, s, vus, t0);
  // Past its graceful stop, a scenario's iterations still running are interrupted, as in k6.
  await run.stopVus(vus.filter((vu) => vu.busy));
}

async function driveScenario(run: Run, s: Scenario, vus: Vu[], t0: number): Promise<void> {
  await run.wait(t0 + s.startTime - performance.now());
  if (run.stopped) return;
  const start = performance.now();
  switch (s.executor) {
    case 'constant-vus': {
      const end = start + s.duration;
      return driveLoops(run, s, vus, () => performance.now() < end, end);
    }
    case 'per-vu-iterations': {
      const end = start + s.maxDuration;
      const done = new Map<Vu, number>();
      return driveLoops(
        run,
        s,
        vus,
        (vu) => performance.now() < end && (done.set(vu, (done.get(vu) ?? 0) + 1).get(vu) ?? 0) <= s.iterations,
        end,
      );
    }
    case 'shared-iterations': {
      const end = start + s.maxDuration;
      let left = s.iterations;
      return driveLoops(run, s, vus, () => performance.now() < end && left-- > 0, end);
    }
    default:
      return runArrivalRate(run, s, vus, start);
  }
}

async function runArrivalRate(
  run: Run,
  s: Extract<Scenario, { executor: 'constant-arrival-rate' | 'ramping-arrival-rate' }>,
  pool: Vu[],
  start: number,
): Promise<void> {
  const duration = s.executor === 'constant-arrival-rate' ? s.duration : s.stages.reduce((a, st) => a + st.duration, 0);
  const message = iterateMessage(run, s);
  const free = [...pool];
  const running = new Set<Promise<unknown>>();
  let spawning = 0;
  let started = 0;
  const tags = message.tags;
  for (let t = 0; t < duration && !run.stopped; t = performance.now() - start) {
    const due = arrivals(s, t);
    while (started < due) {
      started++;
      const vu = free.pop();
      if (!vu) {
        // As k6: no idle VU means the iteration is dropped; a new VU is initialized for later ones, up to maxVUs.
        run.store.add('dropped_iterations', 1, tags);
        if (pool.length + spawning < s.maxVUs) {
          spawning++;
          void run.newVu().then(
            (v) => {
              spawning--;
              pool.push(v);
              free.push(v);
            },
            run.fail.bind(run, { type: 'error', message: 'a VU failed to start' }),
          );
        }
        continue;
      }
      run.store.add('vus', pool.length - free.length, {});
      const p = vu.iterate(message).then(() => {
        free.push(vu);
        running.delete(p);
      });
      running.add(p);
    }
    // Sleep until about the next arrival, at least 1 ms and at most 20 ms (the ramp changes the rate meanwhile).
    const rateNow = Math.max(1e-3, arrivals(s, t + 1000) - due) / 1000;
    await run.wait(Math.min(20, Math.max(1, 1 / rateNow / 2)));
  }
  await Promise.race([Promise.all(running), run.wait(start + duration + s.gracefulStop - performance.now())]);
  run.store.add('vus', 0, {});
}

function initialVus(s: Scenario): number {
  return 'vus' in s ? s.vus : s.preAllocatedVUs;
}

/** Runs the script to completion (or to a cap) and returns what it measured. Refusals and script errors reject. */
export async function runScript(options: RunOptions): Promise<RunResult> {
  const run = new Run(options);
  try {
    // VU 0 reads the options, as k6's first init context does.
    const probe = await Vu.start(run, 0);
    await probe.stop();
    const info = run.readyInfo!;
    if ('__invalid' in (info.options ?? {})) throw new Error(String(info.options.__invalid));
    for (const name of ['setup', 'teardown', 'handleSummary'])
      if (info.exports.includes(name)) throw new K6Unsupported(`the ${name}() lifecycle function`);
    const plan = planFrom(info.options);
    run.plan = plan;
    validateThresholds(plan.thresholds);
    for (const s of plan.scenarios)
      if (!info.exports.includes(s.exec)) throw new Error(`options.scenarios.${s.name}.exec: the script exports no function '${s.exec}'`);
    const bound = Math.min(options.maxDurationMs, Math.max(...plan.scenarios.map(scenarioSpan)) + 5000);
    // As k6, every scenario's initial VUs are initialized before the clock starts.
    const perScenario: Vu[][] = [];
    for (const s of plan.scenarios) perScenario.push(await Promise.all(Array.from({ length: initialVus(s) }, () => run.newVu())));
    const t0 = performance.now();
    const timer = setTimeout(() => run.abort(`the run's time bound (${Math.round(bound / 1000)} s) was reached`), bound);
    // Unreferenced: a run that ends early (a refusal, a script error) must not wait for the bound to pass.
    timer.unref();
    await Promise.all(plan.scenarios.map((s, i) => runScenario(run, s, perScenario[i]!, t0)));
    clearTimeout(timer);
    const elapsedMs = performance.now() - t0;
    if (run.scriptError) {
      throw Object.assign(new Error(run.scriptError.message), {
        name: run.scriptError.type === 'refused' ? 'K6Unsupported' : 'ScriptError',
      });
    }
    return { plan, store: run.store, elapsedMs, aborted: run.abortReason, iterationErrors: run.iterationErrors };
  } finally {
    run.stopped = true;
    run.clearTimers();
    await run.stopVus(run.vus);
    await run.io.close();
  }
}

import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { TgError } from '@tiergate/errors';
import {
  aggregateMetrics,
  type BoundAddress,
  type MetricsJson,
  type ProxySection,
  RuntimeMetrics,
  startAdminServer,
  TicketKeyRotation,
  type WorkerSnapshot,
} from '@tiergate/proxy';
import type { Logger } from 'pino';
import { announce, stopSignal } from './announce.ts';
import { FATAL_MARGIN_MS, fatalError } from './fatal.ts';
import { type FromWorker, isFromWorker, type ToWorker } from './ipc.ts';
import { drainDelay, isStopSignal } from './leave.ts';
import { loadReload } from './proxy-file.ts';
import { reloadAnswerTimeoutMs, reloadOutcome, serialized, type WorkerReloadResult } from './reload-config.ts';
import { nextStreak, restartDelay } from './restart-backoff.ts';
import { proxyExecArgv } from './v8-flags.ts';

/**
 * A worker that does not answer an IPC request within this (a reload: plus its health checks' wait) is
 * wedged: it is left out of that answer, killed and replaced. Every live worker is also pinged this often,
 * so a wedged worker is found even when no one asks for /status.
 */
const IPC_TIMEOUT_MS = 5_000;

/** One worker position: its process comes and goes, its number (the `worker` label) stays. */
interface Slot {
  readonly id: number;
  worker: Worker | undefined;
  ready: boolean;
  /** Config version the worker runs. */
  version: number;
  startedAt: number;
  streak: number;
  timer: NodeJS.Timeout | undefined;
}

type Reply = Extract<FromWorker, { id: number }>;

/**
 * `workers: N > 1`: this process is the node:cluster primary. It forks N workers that each run the proxy
 * on the listeners the primary shares (so the port stays open while any worker lives), replaces a
 * worker that exits unasked (with backoff when it crashes in a loop), serves the admin endpoint with
 * /status and /metrics aggregated over the workers, reloads on SIGHUP or POST /reload, and on
 * SIGTERM/SIGINT has every worker fail its health check together (`monitor_uri` answers 503), keeps them
 * serving for the drain delay (proxy.drain_delay), then asks every worker to drain and waits for them.
 * POST /healthcheck/fail and /healthcheck/ok flip every worker's health check (and any worker forked later).
 */
export class Primary {
  readonly #file: string;
  readonly #log: Logger;
  readonly #slots: Slot[];
  readonly #runtime = new RuntimeMetrics({ processMetricsWorker: 'primary' });
  readonly #metricsEnabled: boolean;
  readonly #pending = new Map<number, { worker: Worker; resolve: (r: Reply | undefined) => void }>();
  #section: ProxySection;
  #version = 1;
  #nextId = 1;
  #stopping = false;
  /** Every worker's `monitor_uri` answers 503 (SIGTERM, or POST /healthcheck/fail). */
  #healthFailing = false;
  #drainDelayMs: number;
  #started = false;
  #listeners: BoundAddress[] = [];
  #startup: { resolve: () => void; reject: (e: Error) => void } | undefined;
  /** Resolves on the first error nothing caught in this process (fatal.ts); installed by start(). */
  #fatal: Promise<string> = new Promise(() => {});
  /** Added to every worker's environment (the telemetry settings each worker starts its own SDK from). */
  readonly #workerEnv: Readonly<Record<string, string>>;
  /**
   * Session ticket keys made here and sent to every worker, so that a ticket one worker issued resumes on
   * whichever worker the next connection reaches; listeners cannot change on reload, so neither does this.
   */
  #tickets: TicketKeyRotation | undefined;

  /** `metricsEnabled`: `telemetry.metrics.enabled`, whether the admin listener serves /metrics. */
  constructor(
    file: string,
    section: ProxySection,
    workers: number,
    log: Logger,
    workerEnv: Readonly<Record<string, string>> = {},
    drainDelayMs = 0,
    metricsEnabled = true,
  ) {
    this.#metricsEnabled = metricsEnabled;
    this.#file = file;
    this.#drainDelayMs = drainDelayMs;
    this.#workerEnv = workerEnv;
    this.#section = section;
    this.#log = log;
    this.#slots = Array.from({ length: workers }, (_, i) => ({
      id: i + 1,
      worker: undefined,
      ready: false,
      version: 0,
      startedAt: 0,
      streak: 0,
      timer: undefined,
    }));
  }

  /** Forks the workers and resolves once all serve; rejects (after stopping them) if one fails to start. */
  async start(): Promise<void> {
    this.#fatal = fatalError(this.#log, () => this.#section.shutdown_timeout + FATAL_MARGIN_MS);
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('./worker-entry.js', import.meta.url)),
      execArgv: proxyExecArgv(process.execArgv, process.env.NODE_OPTIONS),
    });
    this.#tickets = new TicketKeyRotation(this.#section.listeners, (index, keys) => {
      for (const s of this.#slots) if (s.worker) this.#send(s.worker, { t: 'ticketKeys', index, keys: keys.toString('base64') });
    });
    const ready = new Promise<void>((resolve, reject) => (this.#startup = { resolve, reject }));
    for (const s of this.#slots) this.#fork(s);
    try {
      await ready;
    } catch (err) {
      await this.#stopWorkers();
      throw err;
    }
    this.#started = true;
  }

  #fork(slot: Slot): void {
    slot.timer = undefined;
    if (this.#stopping) return;
    const w = cluster.fork({ ...this.#workerEnv, TIERGATE_WORKER: String(slot.id), TIERGATE_LOG_LEVEL: this.#log.level });
    slot.worker = w;
    slot.ready = false;
    slot.startedAt = Date.now();
    w.on('message', (m: unknown) => {
      if (isFromWorker(m)) this.#onMessage(slot, w, m);
    });
    w.on('exit', (code, signal) => this.#onExit(slot, w, code, signal));
  }

  #send(w: Worker, m: ToWorker): void {
    if (w.isConnected()) w.send(m);
  }

  #onMessage(slot: Slot, w: Worker, m: FromWorker): void {
    switch (m.t) {
      case 'hello':
        slot.version = this.#version;
        this.#send(w, {
          t: 'start',
          section: this.#section,
          version: this.#version,
          ticketKeys: (this.#tickets?.keys() ?? []).map((k) => k?.toString('base64') ?? null),
        });
        return;
      case 'ready':
        slot.ready = true;
        this.#listeners = m.addresses;
        this.#runtime.workers.set(this.#slots.filter((s) => s.ready).length);
        this.#log.info({ worker: String(slot.id), pid: w.process.pid }, 'worker ready');
        // A replacement forked while the node is leaving fails its check with the others (no answer needed: id 0).
        if (this.#healthFailing) this.#send(w, { t: 'health', id: 0, failing: true });
        // It was started with a config that a reload replaced meanwhile. One that refuses the config the
        // others run is replaced rather than left on the old one.
        if (slot.version !== this.#version) {
          const version = this.#version;
          void this.#reloadWorker(w, this.#section).then((r) => {
            if (r !== 'no answer' && r.applied) slot.version = version;
            else if (r !== 'no answer') w.process.kill('SIGKILL');
          });
        }
        if (this.#startup && this.#slots.every((s) => s.ready)) this.#startup.resolve();
        return;
      case 'failed':
        this.#log.error({ worker: String(slot.id), error: m.error }, 'worker failed to start');
        if (!this.#started) this.#startup?.reject(new TgError(m.error.code, m.error.message));
        return;
      default: {
        const p = this.#pending.get(m.id);
        if (p) {
          this.#pending.delete(m.id);
          p.resolve(m);
        }
      }
    }
  }

  #onExit(slot: Slot, w: Worker, code: number | null, signal: string | null): void {
    for (const [id, p] of this.#pending)
      if (p.worker === w) {
        this.#pending.delete(id);
        p.resolve(undefined);
      }
    if (slot.worker !== w) return;
    slot.worker = undefined;
    slot.ready = false;
    this.#runtime.workers.set(this.#slots.filter((s) => s.ready).length);
    if (this.#stopping) return;
    if (!this.#started) {
      this.#startup?.reject(new TgError('TG_PROXY_LISTEN', `worker ${slot.id} exited during startup (code ${code}, signal ${signal})`));
      return;
    }
    slot.streak = nextStreak(slot.streak, Date.now() - slot.startedAt);
    const delay = restartDelay(slot.streak);
    this.#runtime.restarts.inc();
    this.#log.warn({ worker: String(slot.id), pid: w.process.pid, code, signal, restartInMs: delay }, 'worker exited; replacing it');
    slot.timer = setTimeout(() => this.#fork(slot), delay);
  }

  /**
   * Sends a request to one worker; undefined if it exits or does not answer in time. One that does not
   * answer is killed (replaced by #onExit): its event loop is stuck, and so are the connections the
   * primary keeps handing it.
   */
  #request(w: Worker, make: (id: number) => ToWorker, timeoutMs = IPC_TIMEOUT_MS): Promise<Reply | undefined> {
    const id = this.#nextId++;
    const message = make(id);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        this.#replaceWedged(w, message.t, timeoutMs);
        resolve(undefined);
      }, timeoutMs);
      this.#pending.set(id, {
        worker: w,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
      this.#send(w, message);
    });
  }

  #replaceWedged(w: Worker, request: string, timeoutMs: number): void {
    const slot = this.#slots.find((s) => s.worker === w);
    if (!slot || this.#stopping || w.isDead()) return;
    this.#log.warn({ worker: String(slot.id), pid: w.process.pid, request, timeoutMs }, 'worker did not answer; killing and replacing it');
    w.process.kill('SIGKILL');
  }

  #live(): { slot: Slot; worker: Worker }[] {
    return this.#slots.filter((s) => s.ready && s.worker).map((s) => ({ slot: s, worker: s.worker! }));
  }

  async #gather(): Promise<{ snapshots: WorkerSnapshot[]; metrics: MetricsJson[] }> {
    const replies = await Promise.all(this.#live().map(({ worker }) => this.#request(worker, (id) => ({ t: 'snapshot', id }))));
    const snapshots: WorkerSnapshot[] = [];
    const metrics: MetricsJson[] = [];
    for (const r of replies)
      if (r?.t === 'snapshot') {
        snapshots.push(r.snapshot);
        metrics.push(r.metrics);
      }
    return { snapshots, metrics };
  }

  /** Has one worker apply `section`; a worker that does not answer in time is killed (see #request). */
  async #reloadWorker(w: Worker, section: ProxySection): Promise<WorkerReloadResult> {
    const timeoutMs = reloadAnswerTimeoutMs(section, IPC_TIMEOUT_MS);
    const r = await this.#request(w, (id) => ({ t: 'reload', id, section, version: this.#version }), timeoutMs);
    if (r?.t !== 'reloaded') return 'no answer';
    return r.error ? { applied: false, error: r.error } : { applied: true };
  }

  /** Back to the running config after a failed reload; a worker that cannot go back is replaced. */
  async #rollBack(slot: Slot, w: Worker): Promise<void> {
    const r = await this.#reloadWorker(w, this.#section);
    if (r === 'no answer' || r.applied) return;
    this.#log.warn({ worker: String(slot.id), error: r.error }, 'worker could not go back to the running config; replacing it');
    w.process.kill('SIGKILL');
  }

  /**
   * Validates the file, then has every worker apply it, all or nothing (reloadOutcome): when one worker
   * refuses it, those that applied it go back to the running config and the reload rejects with that
   * worker's error. A worker that does not answer is replaced by one started on the committed config.
   */
  readonly reload = serialized(async () => {
    try {
      const { section: next, drainDelayMs } = await loadReload(this.#file, this.#section);
      const live = this.#live();
      const results = await Promise.all(live.map(({ worker }) => this.#reloadWorker(worker, next)));
      const outcome = reloadOutcome(results);
      if (!outcome.commit) {
        await Promise.all(outcome.rollBack.map((i) => this.#rollBack(live[i]!.slot, live[i]!.worker)));
        const at = results.findIndex((r) => r !== 'no answer' && !r.applied);
        const e = outcome.error!;
        throw new TgError(e.code, at >= 0 ? `worker ${live[at]!.slot.id}: ${e.message}` : e.message);
      }
      this.#section = next;
      this.#drainDelayMs = drainDelayMs;
      this.#version++;
      for (const [i, { slot }] of live.entries()) if (results[i] !== 'no answer') slot.version = this.#version;
      // A worker that became ready during the reload started on the old config.
      await Promise.all(
        this.#live()
          .filter(({ slot }) => slot.version !== this.#version)
          .map(async ({ slot, worker }) => {
            const r = await this.#reloadWorker(worker, next);
            if (r !== 'no answer' && r.applied) slot.version = this.#version;
            else if (r !== 'no answer') worker.process.kill('SIGKILL'); // its replacement starts on `next`
          }),
      );
      this.#runtime.reloads.inc({ result: 'ok' });
      this.#log.info({ file: this.#file, workers: live.length, replaced: outcome.replace.length }, 'config reloaded');
    } catch (err) {
      this.#runtime.reloads.inc({ result: 'error' });
      this.#log.error(
        { file: this.#file, error: { code: (err as TgError).code, message: (err as Error).message } },
        'reload rejected; the running config stays',
      );
      throw err;
    }
  });

  /** Flips every live worker's health check at once and waits for their answers (one that does not answer is replaced). */
  async #setHealth(failing: boolean): Promise<void> {
    this.#healthFailing = failing;
    await Promise.all(this.#live().map(({ worker }) => this.#request(worker, (id) => ({ t: 'health', id, failing }))));
  }

  async #stopWorkers(): Promise<void> {
    this.#stopping = true;
    this.#tickets?.stop();
    const exits: Promise<unknown>[] = [];
    for (const s of this.#slots) {
      clearTimeout(s.timer);
      const w = s.worker;
      if (!w || w.isDead()) continue;
      exits.push(new Promise((r) => w.once('exit', r)));
      this.#send(w, { t: 'shutdown' });
    }
    const grace = setTimeout(() => {
      for (const s of this.#slots) if (s.worker && !s.worker.isDead()) s.worker.process.kill('SIGKILL');
    }, this.#section.shutdown_timeout + 5_000);
    await Promise.all(exits);
    clearTimeout(grace);
  }

  /**
   * Runs until SIGTERM/SIGINT: admin endpoint, SIGHUP reloads, liveness pings, then a drain of every worker.
   * An error nothing caught in the primary drains the workers the same way and sets exit code 1.
   */
  async run(onReload: (fn: () => void) => void): Promise<void> {
    const admin = await startAdminServer(
      this.#section.admin,
      {
        snapshots: async () => (await this.#gather()).snapshots,
        ...(this.#metricsEnabled && {
          metrics: async (format) => {
            const { metrics } = await this.#gather();
            return aggregateMetrics([...metrics, (await this.#runtime.registry.getMetricsAsJSON()) as MetricsJson], format);
          },
        }),
        draining: () => this.#stopping || this.#healthFailing,
        reload: this.reload,
        healthCheck: (failing) => this.#setHealth(failing),
      },
      this.#log,
    ).catch(async (err: unknown) => {
      await this.#stopWorkers();
      throw err;
    });
    onReload(() => void this.reload().catch(() => {}));
    announce(this.#listeners, admin.address(), this.#slots.length);
    const heartbeat = setInterval(() => {
      for (const { worker } of this.#live()) void this.#request(worker, (id) => ({ t: 'ping', id }));
    }, IPC_TIMEOUT_MS);
    const signal = await Promise.race([stopSignal(), this.#fatal]);
    if (isStopSignal(signal)) {
      await this.#setHealth(true);
      await drainDelay(this.#drainDelayMs, this.#log);
    }
    clearInterval(heartbeat);
    this.#log.info({ signal }, 'draining all workers');
    await this.#stopWorkers();
    await admin.close();
    this.#log.info('stopped');
  }
}

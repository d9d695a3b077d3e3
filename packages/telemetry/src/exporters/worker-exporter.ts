/**
 * OTLP export on its own thread. The main thread encodes spans as they end (encoding-span-processor.ts) and hands
 * each framed request to a worker thread (export-worker.ts), which sends it with the OTLP exporter over undici.
 *
 * Why a thread: V8 optimizes a function for the types it has seen, per isolate. The exporter's HTTP client is the
 * same undici (and node stream/buffer code) the proxy forwards every request through; exporting from the main
 * thread, even once every 5 s, showed those hot functions request bodies, handlers and dispatchers of another
 * shape, and V8 re-optimized them for both, slower for every request. At 1 % sampling that was most of what
 * tracing cost: the same spans with the send skipped cost ~1 % of throughput, sent from the main thread ~6.5 %
 * (loadtest/tracing-bench.ts, same run). A worker has its own isolate, so the proxy's code never sees the
 * exporter's types. The processor frames each request in a buffer of its own, which is transferred, not copied.
 *
 * The thread starts with the exporter, so that loading its modules (~0.1–0.2 s of CPU) happens while the process
 * starts rather than in the middle of serving, and again on the next export after it died (an out-of-memory
 * abort, say: its heap is capped): the batch that was in flight is reported failed, the next one goes to a new thread. It holds the
 * event loop open only while an export is in flight, like the socket of a main-thread exporter would.
 */
import { Worker } from 'node:worker_threads';
import { diag } from '@opentelemetry/api';
import type { EncodedBatch, EncodedBatchExporter } from './encoding-span-processor.ts';
import type { OtlpExportSettings } from './otlp-export-settings.ts';

/** What the thread needs to export: the resolved settings (headers, TLS PEM texts…), cloned into the thread. */
export type ExportWorkerData = OtlpExportSettings;

export type ToExportWorker = { type: 'export'; id: number; body: Uint8Array; spans: number } | { type: 'shutdown' };

export type FromExportWorker =
  | { type: 'exported'; id: number; error?: string; buffer?: ArrayBuffer }
  | { type: 'diag'; level: 'error' | 'warn'; message: string }
  | { type: 'stopped' };

/**
 * The exporter thread's heap: a batch is at most 2048 spans (~0.6 MB encoded, exporter-registry.ts) and the OTLP
 * exporter keeps a bounded number in flight, so 64 MiB is ample; a small young generation keeps its RSS small.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 } as const;

interface Pending {
  resolve(buffer: ArrayBuffer | undefined): void;
  reject(err: Error): void;
  /** The body was the caller's to give (`owned`): its buffer, sent back by the thread, goes back to the caller. */
  readonly owned: boolean;
}

export class WorkerExporter implements EncodedBatchExporter {
  readonly #data: ExportWorkerData;
  readonly #script: URL;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #shutdown: Promise<void> | undefined;

  /** `script`: the thread's module, export-worker.ts (tests give a stand-in that crashes). */
  constructor(settings: OtlpExportSettings, script = new URL('./export-worker.ts', import.meta.url)) {
    this.#data = settings;
    this.#script = script;
    this.#ensureWorker();
  }

  /** The exporter thread's id while one runs (tests use it to tell the export happened off the main thread). */
  get threadId(): number | undefined {
    return this.#worker?.threadId;
  }

  /**
   * Sends one request. An `owned` body's ArrayBuffer is transferred to the thread (it is empty here afterwards) and
   * back once the request was answered: the promise resolves with it. Any other body is copied first, and the
   * caller keeps it.
   */
  export(batch: EncodedBatch): Promise<ArrayBuffer | undefined> {
    if (this.#shutdown) return Promise.reject(new Error('the exporter is shut down'));
    const worker = this.#ensureWorker();
    const id = this.#nextId++;
    const body = batch.owned ? batch.body : ownCopy(batch.body);
    return new Promise<ArrayBuffer | undefined>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, owned: batch.owned === true });
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ type: 'export', id, body, spans: batch.spans } satisfies ToExportWorker, [body.buffer as ArrayBuffer]);
    });
  }

  /** Waits for the exports in flight (the processor already awaited its own), then stops the thread. */
  shutdown(): Promise<void> {
    this.#shutdown ??= (async () => {
      const worker = this.#worker;
      if (!worker) return;
      worker.ref();
      const stopped = new Promise<void>((resolve) => {
        worker.on('message', (m: FromExportWorker) => m.type === 'stopped' && resolve());
        worker.once('exit', () => resolve());
      });
      worker.postMessage({ type: 'shutdown' } satisfies ToExportWorker);
      await stopped;
      await worker.terminate();
    })();
    return this.#shutdown;
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(this.#script, {
      workerData: this.#data satisfies ExportWorkerData,
      resourceLimits: WORKER_LIMITS,
    });
    worker.unref();
    worker.on('message', (m: FromExportWorker) => this.#onMessage(worker, m));
    worker.on('error', (err) => diag.error(`the OTLP exporter thread failed: ${err.message}`));
    worker.once('exit', () => this.#onExit(worker));
    this.#worker = worker;
    return worker;
  }

  #onMessage(worker: Worker, m: FromExportWorker): void {
    if (m.type === 'diag') diag[m.level](m.message);
    else if (m.type === 'exported') {
      const pending = this.#pending.get(m.id);
      if (!pending) return;
      this.#pending.delete(m.id);
      if (this.#pending.size === 0 && !this.#shutdown) worker.unref();
      if (m.error === undefined) pending.resolve(pending.owned ? m.buffer : undefined);
      else pending.reject(new Error(m.error));
    }
  }

  /** The thread ended: whatever it had in flight is lost, and the next export starts a new one. */
  #onExit(worker: Worker): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    const lost = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of lost) p.reject(new Error('the OTLP exporter thread exited before the export finished'));
  }
}

/** A copy of `bytes` in an ArrayBuffer of its own: a small Buffer lives in Node's shared pool, not to be transferred. */
function ownCopy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

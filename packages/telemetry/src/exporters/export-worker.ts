/**
 * The OTLP exporter's thread (worker-exporter.ts starts it): receives encoded ExportTraceServiceRequests from the
 * main thread and sends them with the OTLP exporter (otlp-proto-exporter.ts: undici, retries, timeout), then answers
 * each with its outcome. Diagnostics the exporter logs here are forwarded to the main thread's diag logger.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type DiagLogger, DiagLogLevel, diag } from '@opentelemetry/api';
import { createOtlpProtoExporter } from './otlp-proto-exporter.ts';
import type { ExportWorkerData, FromExportWorker, ToExportWorker } from './worker-exporter.ts';

const port = parentPort;
if (!port) throw new Error('export-worker.ts runs as a worker thread (worker-exporter.ts starts it)');
const post = (message: FromExportWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

const forward =
  (level: 'error' | 'warn'): DiagLogger['error'] =>
  (message, ...args) =>
    post({ type: 'diag', level, message: [message, ...args.map((a) => (a instanceof Error ? a.message : String(a)))].join(' ') });
const ignore = (): void => {};
diag.setLogger({ error: forward('error'), warn: forward('warn'), info: ignore, debug: ignore, verbose: ignore }, DiagLogLevel.WARN);

const exporter = createOtlpProtoExporter(workerData as ExportWorkerData);

port.on('message', (message: ToExportWorker) => {
  if (message.type === 'export') {
    const { id, body, spans } = message;
    // The body was transferred here: it is this thread's, and goes back (transferred again) once sent.
    exporter.export({ body, spans, owned: true }).then(
      (buffer) => post({ type: 'exported', id, buffer }, buffer ? [buffer] : []),
      (err: unknown) => post({ type: 'exported', id, error: err instanceof Error ? err.message : String(err) }),
    );
  } else {
    // Shutdown: the exporter waits for the exports it has in flight; then the thread has nothing left to run.
    void exporter.shutdown().finally(() => {
      post({ type: 'stopped' });
      port.close();
    });
  }
});

// Exports one batch through a WorkerExporter and then does nothing: the process must exit by itself, because an
// idle exporter thread does not hold the event loop open (worker-exporter.test.ts).
import { WorkerExporter } from '../../src/exporters/worker-exporter.ts';

const exporter = new WorkerExporter({
  protocol: 'http/protobuf',
  url: process.argv[2]!,
  timeoutMillis: 5000,
  headers: {},
  compression: 'none',
  tls: {},
});
await exporter.export({ body: Uint8Array.of(10, 0), spans: 1 });
console.log(`exported from thread ${exporter.threadId}`);

// A stand-in for export-worker.ts that dies on its first message, as a thread killed by an out-of-memory abort
// would: worker-exporter.test.ts checks the export in flight is reported lost and the next one gets a new thread.
import { parentPort } from 'node:worker_threads';

parentPort!.once('message', () => process.exit(7));

import { execFile } from 'node:child_process';
import { threadId } from 'node:worker_threads';
import { type DiagLogger, DiagLogLevel, diag } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { WorkerExporter } from '../src/exporters/worker-exporter.ts';
import { endpoint, plainExport } from './otlp-endpoint.ts';

/** Collects what reaches the main thread's diag logger while `fn` runs. */
async function diagnostics<T>(fn: () => Promise<T>): Promise<{ result: T; logged: string[] }> {
  const logged: string[] = [];
  const log =
    (level: string): DiagLogger['error'] =>
    (m) =>
      void logged.push(`${level}: ${m}`);
  diag.setLogger({ error: log('error'), warn: log('warn'), info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);
  try {
    return { result: await fn(), logged };
  } finally {
    diag.disable();
  }
}

describe('WorkerExporter (OTLP export on its own thread)', () => {
  it('sends the encoded bytes from another thread, and the caller keeps its buffer', async () => {
    await using ep = await endpoint();
    const exporter = new WorkerExporter(plainExport(ep.url));
    expect(exporter.threadId).toBeGreaterThan(0); // started with the exporter, not on the first export
    const body = Uint8Array.of(10, 3, 1, 2, 3);
    expect(await exporter.export({ body, spans: 1 })).toBeUndefined(); // a copy: nothing handed back
    expect(exporter.threadId).toBeGreaterThan(0);
    expect(exporter.threadId).not.toBe(threadId);
    expect(ep.bodies).toEqual([Buffer.from(body)]);
    expect([...body]).toEqual([10, 3, 1, 2, 3]); // copied, not detached
    // An owned body (the processor's own request buffer) is transferred, not copied: it is detached here, and comes
    // back whole, transferred again, once the request was answered.
    const owned = new Uint8Array(new ArrayBuffer(64), 0, 2);
    owned.set([10, 0]);
    const back = await exporter.export({ body: owned, spans: 1, owned: true });
    expect(owned.buffer.byteLength).toBe(0);
    expect(back?.byteLength).toBe(64);
    expect([...new Uint8Array(back!, 0, 2)]).toEqual([10, 0]);
    expect(ep.bodies).toEqual([Buffer.from(body), Buffer.from([10, 0])]);
    await exporter.shutdown();
    await expect(exporter.export({ body: Uint8Array.of(10, 0), spans: 1 })).rejects.toThrow('shut down');
  });

  it("rejects with the exporter's error, and forwards the thread's diagnostics to this thread's diag logger", async () => {
    await using ep = await endpoint([
      (res) => res.writeHead(400, 'Bad Request').end('no'),
      // A 2xx whose body is not an ExportTraceServiceResponse: the OTLP exporter logs a warning (in the thread).
      (res) => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from([0xff, 0xff, 0xff])),
    ]);
    const exporter = new WorkerExporter(plainExport(ep.url));
    const outcome = (p: Promise<unknown>) =>
      p.then(
        () => 'exported',
        (err: Error) => err.message,
      );
    const { result, logged } = await diagnostics(async () => [
      await outcome(exporter.export({ body: Uint8Array.of(10, 0), spans: 1 })),
      await outcome(exporter.export({ body: Uint8Array.of(10, 0), spans: 1 })),
    ]);
    await exporter.shutdown();
    expect(result[0]).toMatch(/Bad Request/);
    expect(result[1]).toBe('exported');
    expect(logged).toEqual([expect.stringMatching(/^warn: .*could not deserialize response/)]);
  });

  it('an export in flight when the thread dies is reported lost, and the next export gets a new thread', async () => {
    await using ep = await endpoint();
    const crashing = new URL('./child/crashing-export-worker.ts', import.meta.url);
    const exporter = new WorkerExporter(plainExport(ep.url), crashing);
    const first = exporter.threadId;
    await expect(exporter.export({ body: Uint8Array.of(10, 0), spans: 1 })).rejects.toThrow(/thread exited before the export finished/);
    expect(exporter.threadId).toBeUndefined();
    const second = exporter.export({ body: Uint8Array.of(10, 0), spans: 1 });
    expect(exporter.threadId).toBeGreaterThan(first!); // a new thread took the next export
    await expect(second).rejects.toThrow(/thread exited/);
    await exporter.shutdown();
    expect(ep.bodies).toHaveLength(0);
  });

  it('an idle exporter thread does not keep the process alive', async () => {
    await using ep = await endpoint();
    const child = new URL('./child/idle-exporter-child.ts', import.meta.url).pathname;
    // execFile's timeout kills a child that hangs; a clean exit with the line printed is what passes.
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
      execFile(process.execPath, [child, ep.url], { timeout: 20_000 }, (err, stdout) => (err ? reject(err) : resolve({ stdout }))),
    );
    expect(stdout).toMatch(/^exported from thread \d+/);
    expect(ep.bodies).toHaveLength(1);
  });
});

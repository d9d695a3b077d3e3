import { describe, expect, it } from 'vitest';
import { createOtlpProtoExporter } from '../src/exporters/otlp-proto-exporter.ts';
import { endpoint, plainExport } from './otlp-endpoint.ts';

describe('createOtlpProtoExporter (inline OTLP/HTTP protobuf export)', () => {
  it("hands an owned body's buffer back once the request was answered, and nothing for a caller's body", async () => {
    await using ep = await endpoint();
    const exporter = createOtlpProtoExporter(plainExport(ep.url));
    const owned = new Uint8Array(new ArrayBuffer(32), 0, 3);
    owned.set([10, 1, 0]);
    const back = await exporter.export({ body: owned, spans: 1, owned: true });
    expect(back).toBe(owned.buffer);
    expect(await exporter.export({ body: Uint8Array.of(10, 0), spans: 1 })).toBeUndefined();
    expect(ep.bodies).toEqual([Buffer.from([10, 1, 0]), Buffer.from([10, 0])]);
    await exporter.shutdown();
  });

  it('rejects a failed export, and keeps its buffer (an attempt may still be sending it)', async () => {
    await using ep = await endpoint([(res) => res.writeHead(400, 'Bad Request').end('no')]);
    const exporter = createOtlpProtoExporter(plainExport(ep.url));
    await expect(exporter.export({ body: new Uint8Array(new ArrayBuffer(8), 0, 2), spans: 1, owned: true })).rejects.toThrow(/Bad Request/);
    await exporter.shutdown();
  });
});

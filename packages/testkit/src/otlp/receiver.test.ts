import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeTraceRequestProtobuf } from './otlp-trace-schema.ts';
import { startOtlpReceiver } from './receiver.ts';

const TRACE = '5b8efff798038103d269b633813fc60c';
const ROOT = 'eee19b7ec3c1b174';
const CHILD = 'eee19b7ec3c1b173';

/** One resource with a SERVER root and a CLIENT child, ids given by `id` (hex or base64). */
function request(id: (hex: string) => string) {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
        scopeSpans: [
          {
            scope: { name: 'tracer' },
            spans: [
              { traceId: id(TRACE), spanId: id(ROOT), name: 'HTTP GET', kind: 2, startTimeUnixNano: '1', endTimeUnixNano: '2' },
              {
                traceId: id(TRACE),
                spanId: id(CHILD),
                parentSpanId: id(ROOT),
                name: 'upstream',
                kind: 3,
                attributes: [
                  { key: 's', value: { stringValue: 'x' } },
                  { key: 'i', value: { intValue: '42' } },
                  { key: 'b', value: { boolValue: true } },
                  { key: 'd', value: { doubleValue: 1.5 } },
                  { key: 'a', value: { arrayValue: { values: [{ stringValue: 'p' }, { intValue: 7 }] } } },
                ],
                status: { code: 2, message: 'boom' },
              },
            ],
          },
        ],
      },
    ],
  };
}

const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

function post(url: string, type: string, body: Uint8Array | string, headers: Record<string, string> = {}) {
  return fetch(url, { method: 'POST', headers: { 'content-type': type, ...headers }, body });
}

describe('startOtlpReceiver', () => {
  it('decodes a protobuf export into spans with hex ids, kinds, attributes, resource and status', async () => {
    await using receiver = await startOtlpReceiver();
    const res = await post(receiver.tracesUrl, 'application/x-protobuf', encodeTraceRequestProtobuf(request(b64)));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-protobuf');
    const [root, child] = receiver.spans();
    expect(root).toMatchObject({ traceId: TRACE, spanId: ROOT, parentSpanId: undefined, kind: 'SERVER', serviceName: 'svc' });
    expect(root?.status).toEqual({ code: 'UNSET', message: undefined });
    expect(child).toMatchObject({ parentSpanId: ROOT, kind: 'CLIENT', name: 'upstream', scope: 'tracer', encoding: 'protobuf' });
    expect(child?.attributes).toEqual({ s: 'x', i: 42, b: true, d: 1.5, a: ['p', 7] });
    expect(child?.status).toEqual({ code: 'ERROR', message: 'boom' });
    expect(receiver.requestCount()).toBe(1);
  });

  it('listens on the host and port given (a collector host of the guest drill listens on its address, 4318)', async () => {
    // 127.0.0.2 is loopback too; a port picked free first, so the receiver must take the one named.
    const free = createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.2', resolve));
    const { port } = free.address() as AddressInfo;
    await new Promise<void>((resolve) => free.close(() => resolve()));
    await using receiver = await startOtlpReceiver({ host: '127.0.0.2', port });
    expect(receiver.url).toBe(`http://127.0.0.2:${port}`);
    expect((await post(receiver.tracesUrl, 'application/x-protobuf', encodeTraceRequestProtobuf(request(b64)))).status).toBe(200);
    expect(receiver.spans()).toHaveLength(2);
  });

  it('decodes OTLP/JSON (hex ids) and gzip-encoded bodies the same way', async () => {
    await using receiver = await startOtlpReceiver();
    const json = JSON.stringify(request((hex) => hex));
    expect((await post(receiver.tracesUrl, 'application/json', json)).status).toBe(200);
    expect((await post(receiver.tracesUrl, 'application/json', gzipSync(json), { 'content-encoding': 'gzip' })).status).toBe(200);
    const spans = receiver.spans();
    expect(spans).toHaveLength(4);
    expect(spans.map((s) => [s.spanId, s.parentSpanId, s.encoding])).toEqual([
      [ROOT, undefined, 'json'],
      [CHILD, ROOT, 'json'],
      [ROOT, undefined, 'json'],
      [CHILD, ROOT, 'json'],
    ]);
  });

  it('refuses what a collector refuses: bad body 400, other path 404, other method 405, other type 415', async () => {
    await using receiver = await startOtlpReceiver();
    expect((await post(receiver.tracesUrl, 'application/x-protobuf', new Uint8Array([0x0a, 0xff]))).status).toBe(400);
    expect((await post(receiver.tracesUrl, 'application/json', '{nope')).status).toBe(400);
    expect((await post(`${receiver.url}/v1/metrics`, 'application/json', '{}')).status).toBe(404);
    expect((await fetch(receiver.tracesUrl)).status).toBe(405);
    expect((await post(receiver.tracesUrl, 'text/plain', 'x')).status).toBe(415);
    expect(receiver.spans()).toEqual([]);
    expect(receiver.requestCount()).toBe(0);
  });

  it('waitForSpans resolves when the condition becomes true and rejects naming what it saw', async () => {
    await using receiver = await startOtlpReceiver();
    const waiting = receiver.waitForSpans((spans) => spans.some((s) => s.name === 'upstream'));
    await post(receiver.tracesUrl, 'application/json', JSON.stringify(request((hex) => hex)));
    expect((await waiting).map((s) => s.name)).toEqual(['HTTP GET', 'upstream']);
    await expect(receiver.waitForSpans((spans) => spans.length > 2, 50)).rejects.toThrow(/2 span\(s\) seen: svc:SERVER:HTTP GET/);
    receiver.clear();
    expect(receiver.spans()).toEqual([]);
  });
});

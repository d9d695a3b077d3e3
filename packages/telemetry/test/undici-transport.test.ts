import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { createUndiciTransport, retryAfterMillis } from '../src/exporters/undici-transport.ts';

/** A real OTLP-ish endpoint on port 0 answering each POST with the next scripted reply. */
async function endpoint(replies: ((res: ServerResponse) => void)[]) {
  const bodies: Buffer[] = [];
  const headers: IncomingMessage['headers'][] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    bodies.push(Buffer.concat(chunks));
    headers.push(req.headers);
    (replies.shift() ?? ((r: ServerResponse) => r.writeHead(200).end()))(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return { url, bodies, headers, [Symbol.asyncDispose]: () => new Promise<void>((r) => server.close(() => r())) };
}

const noWait = { random: () => 0.5, sleep: async () => {} };

describe('undici OTLP transport', () => {
  it('POSTs the bytes with the configured headers and returns the response body on 2xx', async () => {
    await using ep = await endpoint([(res) => res.writeHead(200).end(Buffer.from([1, 2, 3]))]);
    const t = createUndiciTransport({ url: ep.url, headers: { 'content-type': 'application/x-protobuf' }, ...noWait });
    const r = await t.send(Uint8Array.of(9, 8, 7), 5000);
    expect(r).toEqual({ status: 'success', data: Buffer.from([1, 2, 3]) });
    expect(ep.bodies).toEqual([Buffer.from([9, 8, 7])]);
    expect(ep.headers[0]!['content-type']).toBe('application/x-protobuf');
    t.shutdown();
  });

  it('retries 503 and 429 (Retry-After honoured) and succeeds; a 400 is a failure, not retried', async () => {
    const waits: number[] = [];
    await using ep = await endpoint([
      (res) => res.writeHead(503).end(),
      (res) => res.writeHead(429, { 'retry-after': '2' }).end(),
      (res) => res.writeHead(200).end(),
      (res) => res.writeHead(400, 'Bad Request').end('bad span'),
    ]);
    const t = createUndiciTransport({ url: ep.url, headers: {}, random: () => 0.5, sleep: async (ms) => void waits.push(ms) });
    expect((await t.send(Uint8Array.of(1), 60_000)).status).toBe('success');
    // 503: the backoff (1 s, jitter 0 at random 0.5); 429: its Retry-After of 2 s.
    expect(waits).toEqual([1000, 2000]);
    const failed = await t.send(Uint8Array.of(2), 60_000);
    expect(failed.status).toBe('failure');
    expect(failed.status === 'failure' && failed.error.message).toBe('Bad Request');
    expect(ep.bodies).toHaveLength(4);
    t.shutdown();
  });

  it('a refused connection is retryable, retried with growing backoff until the attempts or the deadline run out', async () => {
    const port = await freePort();
    const waits: number[] = [];
    const t = createUndiciTransport({
      url: `http://127.0.0.1:${port}/v1/traces`,
      headers: {},
      random: () => 0.5,
      sleep: async (ms) => void waits.push(ms),
    });
    const r = await t.send(Uint8Array.of(1), 60_000);
    expect(r.status).toBe('retryable');
    expect(waits).toEqual([1000, 1500, 2250, 3375, 5000]);
    // With 2.5 s left, the second wait (1.5 s) would still fit, the third (2.25 s) not.
    waits.length = 0;
    let now = 0;
    const t2 = createUndiciTransport({
      url: `http://127.0.0.1:${port}/v1/traces`,
      headers: {},
      random: () => 0.5,
      sleep: async (ms) => {
        waits.push(ms);
        now += ms;
      },
    });
    const realNow = Date.now;
    const start = realNow();
    Date.now = () => start + now;
    try {
      expect((await t2.send(Uint8Array.of(1), 2500)).status).toBe('retryable');
    } finally {
      Date.now = realNow;
    }
    expect(waits).toEqual([1000, 1500]);
    t.shutdown();
    t2.shutdown();
  });

  it('an endpoint that never answers times out as retryable', async () => {
    await using ep = await endpoint([() => {}, () => {}]);
    const t = createUndiciTransport({ url: ep.url, headers: {}, random: () => 0.5, sleep: async () => {} });
    const r = await t.send(Uint8Array.of(1), 300);
    expect(r.status).toBe('retryable');
    expect(r.status === 'retryable' && r.error?.message).toBe('Request timed out');
    t.shutdown();
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    expect(retryAfterMillis(undefined)).toBeUndefined();
    expect(retryAfterMillis('3')).toBe(3000);
    expect(retryAfterMillis('0')).toBe(-1);
    expect(retryAfterMillis(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
  });
});

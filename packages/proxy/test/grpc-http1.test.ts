import { once } from 'node:events';
import { type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { deframer, Echo, frame, gate, type Msg, startGrpc } from './grpc-helpers.ts';
import { startTestProxy } from './helpers.ts';

/**
 * gRPC through the proxy from an HTTP/1.1 client (node:http, chunked both ways, `TE: trailers`) to a real
 * grpc-js server in an h2c pool: the wire format a gRPC call has on each hop, with the messages framed and
 * encoded by the service's own (proto-loader) serializers. grpc.test.ts makes the same calls from a grpc-js
 * client, over HTTP/2 to the proxy.
 */
const GRPC_HEADERS = { 'content-type': 'application/grpc', te: 'trailers' };

interface Call {
  readonly write: (m: Msg) => void;
  readonly end: () => void;
  /** Every message received so far; `next()` resolves with the next one. */
  readonly received: Msg[];
  next(): Promise<Msg>;
  /** The response (once its head arrived) and its trailers, once it ended. */
  readonly done: Promise<{ res: IncomingMessage; trailers: NodeJS.Dict<string> }>;
}

/** Opens a call; the response is read as it streams in (its head may only come after the first request message). */
function call(port: number, method: 'Say' | 'Count' | 'Chat'): Call {
  const def = Echo.service[method]!;
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: def.path, headers: GRPC_HEADERS });
  req.flushHeaders();
  const received: Msg[] = [];
  const waiting: ((m: Msg) => void)[] = [];
  const done = new Promise<{ res: IncomingMessage; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      res.on(
        'data',
        deframer((bytes) => {
          const m = def.responseDeserialize(bytes) as Msg;
          received.push(m);
          waiting.shift()?.(m);
        }),
      );
      res.on('end', () => resolve({ res, trailers: res.trailers }));
    });
  });
  let seen = 0;
  return {
    write: (m) => void req.write(frame(def.requestSerialize(m))),
    end: () => void req.end(),
    received,
    next: () => {
      const i = seen++;
      return i < received.length ? Promise.resolve(received[i]!) : new Promise((resolve) => waiting.push(resolve));
    },
    done,
  };
}

describe('gRPC from an HTTP/1.1 client through an h2c pool', () => {
  it('unary: the answer and grpc-status 0 in the trailers, announced in Trailer', async () => {
    await using up = await startGrpc();
    await using p = await startTestProxy({ pools: { grpc: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const port = p.proxy.addresses()[0]!.port;
    const c = call(port, 'Say');
    c.write({ text: 'hi', n: 7 });
    c.end();
    const { res, trailers } = await c.done;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/grpc+proto');
    expect(res.headers.trailer).toBe('grpc-status, grpc-message');
    expect(c.received).toEqual([{ text: 'echo hi', n: 7 }]);
    expect(trailers['grpc-status']).toBe('0');
  });

  it('an error status reaches the client (grpc-js answers it trailers-only, in the headers)', async () => {
    await using up = await startGrpc();
    await using p = await startTestProxy({ pools: { grpc: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const c = call(p.proxy.addresses()[0]!.port, 'Say');
    c.write({ text: 'fail', n: 0 });
    c.end();
    const { res, trailers } = await c.done;
    const status = res.headers['grpc-status'] ?? trailers['grpc-status'];
    const message = res.headers['grpc-message'] ?? trailers['grpc-message'];
    // grpc-message is percent-encoded on the wire (PROTOCOL-HTTP2.md), and passed on as it came.
    expect([res.statusCode, status, message]).toEqual([200, '9', 'no%20such%20thing']);
    expect(c.received).toEqual([]);
  });

  it('server streaming: the first message reaches the client before the server has written the second', async () => {
    const g = gate();
    await using up = await startGrpc({ countGate: g });
    await using p = await startTestProxy({ pools: { grpc: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const c = call(p.proxy.addresses()[0]!.port, 'Count');
    c.write({ text: 'tick', n: 3 });
    c.end();
    expect(await c.next()).toEqual({ text: 'tick 1', n: 1 });
    g.open(); // a proxy that buffered the response would never get here
    const { trailers } = await c.done;
    expect(c.received.map((m) => m.text)).toEqual(['tick 1', 'tick 2', 'tick 3']);
    expect(trailers['grpc-status']).toBe('0');
  });

  it('bidirectional streaming: each answer comes back while the request body is still open', async () => {
    await using up = await startGrpc();
    await using p = await startTestProxy({ pools: { grpc: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const c = call(p.proxy.addresses()[0]!.port, 'Chat');
    for (let i = 1; i <= 3; i++) {
      c.write({ text: `m${i}`, n: i });
      expect(await c.next()).toEqual({ text: `re: m${i}`, n: i });
    }
    c.end();
    expect((await c.done).trailers['grpc-status']).toBe('0');
  });

  it('a server that is down: HTTP 502, which gRPC clients read as UNAVAILABLE (nginx grpc_pass does the same)', async () => {
    const up = await startGrpc();
    const address = up.address;
    await up[Symbol.asyncDispose]();
    await using p = await startTestProxy({ pools: { grpc: { protocol: 'h2c', servers: [{ address }] } } });
    const c = call(p.proxy.addresses()[0]!.port, 'Say');
    c.end();
    expect((await c.done).res.statusCode).toBe(502);
  });
});

describe('retries of gRPC calls (POST: non-idempotent)', () => {
  it('with non_idempotent, a call is retried on the next server only while none of its body was read', async () => {
    // The first server resets every stream once a request message arrived: the body was read, no retry.
    const { createServer } = await import('node:http2');
    const resetter = createServer((req) => req.once('data', () => req.stream.close(0x2)));
    resetter.listen(0, '127.0.0.1');
    await once(resetter, 'listening');
    const resetAddress = `127.0.0.1:${(resetter.address() as AddressInfo).port}`;
    const gone = await startGrpc();
    const goneAddress = gone.address;
    await gone[Symbol.asyncDispose]();
    await using good = await startGrpc();
    try {
      const pool = (first: string) => ({
        pools: {
          grpc: {
            protocol: 'h2c',
            algorithm: 'round_robin',
            retries: { on: ['error', 'timeout', 'non_idempotent'] },
            servers: [{ address: first, max_fails: 0 }, { address: good.address }],
          },
        },
      });
      {
        // Refused before anything was sent: retried, the call succeeds on the second server.
        await using p = await startTestProxy(pool(goneAddress));
        const c = call(p.proxy.addresses()[0]!.port, 'Say');
        c.write({ text: 'again', n: 1 });
        c.end();
        const { trailers } = await c.done;
        expect([trailers['grpc-status'], c.received]).toEqual(['0', [{ text: 'echo again', n: 1 }]]);
      }
      {
        await using p = await startTestProxy(pool(resetAddress));
        const c = call(p.proxy.addresses()[0]!.port, 'Say');
        c.write({ text: 'once', n: 1 });
        c.end();
        const { res } = await c.done;
        expect(res.statusCode).toBe(502);
        expect(good.calls.length).toBe(1); // only the refused call's retry
      }
    } finally {
      resetter.close();
    }
  });
});

describe('health_check type grpc on a pool', () => {
  /** Polls the proxy's view of server `i` until it is `healthy` (or 5 s pass). */
  async function until(p: { proxy: { status(): { pools: { servers: { healthy: boolean }[] }[] } } }, i: number, healthy: boolean) {
    const deadline = Date.now() + 5000;
    while (p.proxy.status().pools[0]!.servers[i]!.healthy !== healthy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return p.proxy.status().pools[0]!.servers[i]!.healthy;
  }

  it('takes a server out while its service is NOT_SERVING and back once it is SERVING (grpc.health.v1)', async () => {
    await using a = await startGrpc({ health: { '': 'SERVING', 'tiergate.test.Echo': 'SERVING' } });
    await using b = await startGrpc({ health: { '': 'SERVING', 'tiergate.test.Echo': 'SERVING' } });
    await using p = await startTestProxy({
      pools: {
        grpc: {
          protocol: 'h2c',
          algorithm: 'round_robin',
          servers: [{ address: a.address }, { address: b.address }],
          health_check: { type: 'grpc', service: 'tiergate.test.Echo', interval: '50ms', timeout: '500ms', fall: 1, rise: 1 },
        },
      },
    });
    a.health.setStatus('tiergate.test.Echo', 'NOT_SERVING');
    expect(await until(p, 0, false)).toBe(false);
    const port = p.proxy.addresses()[0]!.port;
    for (let i = 0; i < 4; i++) {
      const c = call(port, 'Say');
      c.write({ text: String(i), n: i });
      c.end();
      expect((await c.done).trailers['grpc-status']).toBe('0');
    }
    expect([a.calls.length, b.calls.length]).toEqual([0, 4]);
    a.health.setStatus('tiergate.test.Echo', 'SERVING');
    expect(await until(p, 0, true)).toBe(true);
    expect(p.proxy.status().pools[0]!.servers[1]!.healthy).toBe(true);
  });
});

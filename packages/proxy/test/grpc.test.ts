import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { Echo, gate, type Msg, startGrpc } from './grpc-helpers.ts';
import { certFiles } from './h2-helpers.ts';
import { startTestProxy } from './helpers.ts';

/**
 * gRPC end to end with grpc-js on both sides: a grpc-js client over HTTP/2 to the proxy (h2c listener, or
 * h2 by ALPN on a TLS listener), the proxy over an h2c or h2 (TLS) pool to a grpc-js server. What the
 * client sees is what a gRPC application sees: messages, streams, status codes and their messages.
 */
type EchoClient = grpc.Client & {
  Say(m: Msg, cb: (err: grpc.ServiceError | null, r?: Msg) => void): grpc.ClientUnaryCall;
  Count(m: Msg): grpc.ClientReadableStream<Msg>;
  Chat(): grpc.ClientDuplexStream<Msg, Msg>;
};

function client(address: string, creds = grpc.credentials.createInsecure()): EchoClient & Disposable {
  const c = new Echo(address, creds) as unknown as EchoClient;
  return Object.assign(c, { [Symbol.dispose]: () => c.close() });
}

function say(c: EchoClient, m: Msg): Promise<Msg> {
  return new Promise((resolve, reject) => c.Say(m, (err, r) => (err ? reject(err) : resolve(r!))));
}

/** The next message of a stream. */
function next<T>(stream: NodeJS.ReadableStream): Promise<T> {
  return new Promise((resolve, reject) => {
    const onData = (m: T) => {
      stream.off('error', reject);
      resolve(m);
    };
    stream.once('data', onData);
    stream.once('error', reject);
  });
}

/** Resolves with the stream's status once it ends. */
function statusOf(stream: grpc.ClientReadableStream<Msg> | grpc.ClientDuplexStream<Msg, Msg>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => stream.on('status', resolve));
}

const h2cListener = { listeners: [{ address: '127.0.0.1', port: 0, http2: true }] };

describe('gRPC through the proxy, grpc-js client and server (h2c listener, h2c pool)', () => {
  it('unary calls, with metadata, and an error status with its message', async () => {
    await using up = await startGrpc();
    await using p = await startTestProxy({ ...h2cListener, pools: { grpc: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    using c = client(`127.0.0.1:${p.proxy.addresses()[0]!.port}`);
    expect(await say(c, { text: 'hi', n: 1 })).toEqual({ text: 'echo hi', n: 1 });
    const err = await say(c, { text: 'fail', n: 0 }).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'no such thing' });
    // The proxy's forwarding headers reach the server as metadata, as HTTP headers would.
    expect(up.calls[0]!.get('x-forwarded-for')).toEqual(['127.0.0.1']);
  });

  it('server streaming: the first message arrives before the server has written the second', async () => {
    const g = gate();
    await using up = await startGrpc({ countGate: g });
    await using p = await startTestProxy({ ...h2cListener, pools: { grpc: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    using c = client(`127.0.0.1:${p.proxy.addresses()[0]!.port}`);
    const stream = c.Count({ text: 'tick', n: 3 });
    const status = statusOf(stream);
    expect(await next<Msg>(stream)).toEqual({ text: 'tick 1', n: 1 });
    g.open(); // a proxy that buffered the response would never get here
    const rest: Msg[] = [];
    stream.on('data', (m: Msg) => rest.push(m));
    expect((await status).code).toBe(grpc.status.OK);
    expect(rest.map((m) => m.text)).toEqual(['tick 2', 'tick 3']);
  });

  it('bidirectional streaming: each answer comes back before the next message is sent', async () => {
    await using up = await startGrpc();
    await using p = await startTestProxy({ ...h2cListener, pools: { grpc: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    using c = client(`127.0.0.1:${p.proxy.addresses()[0]!.port}`);
    const chat = c.Chat();
    const status = statusOf(chat);
    for (let i = 1; i <= 3; i++) {
      chat.write({ text: `m${i}`, n: i });
      expect(await next<Msg>(chat)).toEqual({ text: `re: m${i}`, n: i });
    }
    chat.end();
    expect((await status).code).toBe(grpc.status.OK);
  });

  it('a server that is down: UNAVAILABLE (the proxy answers 502, as nginx grpc_pass does)', async () => {
    const up = await startGrpc();
    const address = up.address;
    await up[Symbol.asyncDispose]();
    await using p = await startTestProxy({ ...h2cListener, pools: { grpc: { protocol: 'h2c', servers: [{ address }] } } });
    using c = client(`127.0.0.1:${p.proxy.addresses()[0]!.port}`);
    const err = await say(c, { text: 'hi', n: 1 }).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});

describe('gRPC over TLS on both hops (h2 by ALPN on the listener, h2 pool to a TLS grpc-js server)', () => {
  it('unary and server streaming calls', async () => {
    await using files = await certFiles();
    const pair = { key: await readFile(files.key, 'utf8'), cert: await readFile(files.cert, 'utf8') };
    await using up = await startGrpc({ tls: pair });
    await using p = await startTestProxy({
      listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: files.cert, key: files.key } }],
      pools: { grpc: { protocol: 'h2', tls_verify: true, tls_ca: files.cert, servers: [{ address: up.address }] } },
    });
    using c = client(`localhost:${p.proxy.addresses()[0]!.port}`, grpc.credentials.createSsl(Buffer.from(pair.cert)));
    expect(await say(c, { text: 'secure', n: 2 })).toEqual({ text: 'echo secure', n: 2 });
    const stream = c.Count({ text: 'tick', n: 2 });
    const got: Msg[] = [];
    stream.on('data', (m: Msg) => got.push(m));
    expect((await statusOf(stream)).code).toBe(grpc.status.OK);
    expect(got.map((m) => m.text)).toEqual(['tick 1', 'tick 2']);
  });
});

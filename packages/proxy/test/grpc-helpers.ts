import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { HealthImplementation, type ServingStatusMap } from 'grpc-health-check';

/** The tests' Echo service (fixtures/echo.proto), loaded by proto-loader as any grpc-js app would. */
export const echoProto = grpc.loadPackageDefinition(loadSync(join(import.meta.dirname, 'fixtures', 'echo.proto'))) as unknown as {
  tiergate: { test: { Echo: grpc.ServiceClientConstructor } };
};
export const Echo = echoProto.tiergate.test.Echo;

export interface Msg {
  text: string;
  n: number;
}

/** Resolved by the test to let a server stream go on: proves the proxy passed the first message on before the rest existed. */
export interface Gate {
  open(): void;
  readonly opened: Promise<void>;
}

export function gate(): Gate {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { open: () => resolve(), opened: promise };
}

export interface GrpcUpstream extends AsyncDisposable {
  readonly address: string;
  readonly port: number;
  readonly health: HealthImplementation;
  /** Metadata of every call, in order. */
  readonly calls: grpc.Metadata[];
}

/**
 * A real grpc-js server on 127.0.0.1 port 0 with Echo and the reference grpc.health.v1 service:
 * Say answers `echo <text>` (text `fail`: FAILED_PRECONDITION "no such thing"); Count streams `n` messages,
 * the second only once `countGate` opens; Chat answers each message as it comes.
 */
export async function startGrpc(
  opts: { countGate?: Gate; health?: ServingStatusMap; tls?: { key: string; cert: string; clientCa?: Buffer } } = {},
): Promise<GrpcUpstream> {
  const server = new grpc.Server();
  const calls: grpc.Metadata[] = [];
  server.addService(Echo.service, {
    Say(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      calls.push(call.metadata);
      if (call.request.text === 'fail') cb({ code: grpc.status.FAILED_PRECONDITION, details: 'no such thing' });
      else cb(null, { text: `echo ${call.request.text}`, n: call.request.n });
    },
    async Count(call: grpc.ServerWritableStream<Msg, Msg>) {
      calls.push(call.metadata);
      for (let i = 1; i <= call.request.n; i++) {
        call.write({ text: `${call.request.text} ${i}`, n: i });
        if (i === 1) await opts.countGate?.opened;
      }
      call.end();
    },
    Chat(call: grpc.ServerDuplexStream<Msg, Msg>) {
      calls.push(call.metadata);
      call.on('data', (m: Msg) => call.write({ text: `re: ${m.text}`, n: m.n }));
      call.on('end', () => call.end());
    },
  });
  const health = new HealthImplementation(opts.health ?? { '': 'SERVING' });
  health.addToServer(server);
  const creds = opts.tls
    ? grpc.ServerCredentials.createSsl(
        opts.tls.clientCa ?? null,
        [{ private_key: Buffer.from(opts.tls.key), cert_chain: Buffer.from(opts.tls.cert) }],
        // With `clientCa`: a client must present a certificate that chains to it.
        opts.tls.clientCa !== undefined,
      )
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    port,
    health,
    calls,
    [Symbol.asyncDispose]: async () => void server.forceShutdown(),
  };
}

/** One gRPC message: a 0 compressed flag, the 4-byte length, the bytes (gRPC PROTOCOL-HTTP2.md). */
export function frame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Splits a stream of gRPC messages as bytes arrive; calls `onMessage` for each complete one. */
export function deframer(onMessage: (m: Buffer) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const len = buf.readUInt32BE(1);
      onMessage(buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
    }
  };
}

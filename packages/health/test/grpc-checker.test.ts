import { type AddressInfo, createServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, service as healthService, type ServingStatusMap } from 'grpc-health-check';
import { describe, expect, it } from 'vitest';
import { healthCheckRequest, servingStatus } from '../src/grpc-checker.ts';
import { GrpcChecker, type GrpcCheckSpec } from '../src/index.ts';
import { httpServer, selfSignedCert } from './helpers.ts';

/** A real grpc-js server with the reference health service (grpc-health-check), on 127.0.0.1 port 0. */
async function healthServer(statuses: ServingStatusMap, tls = false) {
  const server = new grpc.Server();
  const health = new HealthImplementation(statuses);
  health.addToServer(server);
  const creds = tls
    ? await selfSignedCert().then((c) =>
        grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(c.key), cert_chain: Buffer.from(c.cert) }]),
      )
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, health, [Symbol.asyncDispose]: async () => void server.forceShutdown() };
}

async function checkOnce(spec: GrpcCheckSpec, port: number, timeoutMs = 2000) {
  return new GrpcChecker(spec).check({ host: '127.0.0.1', port }, timeoutMs);
}

describe('GrpcChecker against a grpc-js server with grpc.health.v1', () => {
  it('is up on SERVING and down on NOT_SERVING, for the whole server and for a named service', async () => {
    await using srv = await healthServer({ '': 'SERVING', 'app.Echo': 'NOT_SERVING' });
    expect(await checkOnce({ kind: 'grpc' }, srv.port)).toMatchObject({ ok: true, detail: 'SERVING' });
    expect(await checkOnce({ kind: 'grpc', service: 'app.Echo' }, srv.port)).toMatchObject({ ok: false, detail: 'NOT_SERVING' });
    srv.health.setStatus('app.Echo', 'SERVING');
    srv.health.setStatus('', 'NOT_SERVING');
    expect(await checkOnce({ kind: 'grpc', service: 'app.Echo' }, srv.port)).toMatchObject({ ok: true, detail: 'SERVING' });
    expect(await checkOnce({ kind: 'grpc' }, srv.port)).toMatchObject({ ok: false, detail: 'NOT_SERVING' });
  });

  it('is down with the gRPC status for a service the server does not know (NOT_FOUND)', async () => {
    await using srv = await healthServer({ '': 'SERVING' });
    const r = await checkOnce({ kind: 'grpc', service: 'nope' }, srv.port);
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/^grpc-status 5 \(NOT_FOUND\)/);
  });

  it('speaks h2 over TLS with `tls`, and refuses a self-signed certificate when verifying', async () => {
    await using srv = await healthServer({ '': 'SERVING' }, true);
    expect(await checkOnce({ kind: 'grpc', tls: true, rejectUnauthorized: false }, srv.port)).toMatchObject({
      ok: true,
      detail: 'SERVING',
    });
    const verified = await checkOnce({ kind: 'grpc', tls: true }, srv.port);
    expect(verified.ok).toBe(false);
    expect(verified.detail).toMatch(/self-signed|SELF_SIGNED/i);
    expect((await checkOnce({ kind: 'grpc' }, srv.port)).ok).toBe(false);
  });

  it('is down, not hung, on a server that is not gRPC or never answers', async () => {
    await using http1 = await httpServer((_req, res) => res.end('hello'));
    expect((await checkOnce({ kind: 'grpc' }, http1.port)).ok).toBe(false);
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const r = await checkOnce({ kind: 'grpc' }, (silent.address() as AddressInfo).port, 300);
      expect(r).toMatchObject({ ok: false, detail: 'timeout after 300 ms' });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('the hand-written protobuf (byte parity with grpc-health-check, i.e. protobufjs)', () => {
  const check = healthService.Check!;

  it('encodes HealthCheckRequest as the library does, behind the 5-byte gRPC message prefix', () => {
    for (const name of ['', 'app.Echo', 'x'.repeat(300), 'grüß']) {
      const lib = check.requestSerialize({ service: name });
      const ours = healthCheckRequest(name);
      expect(ours.subarray(5)).toEqual(Buffer.from(lib));
      expect([ours[0], ours.readUInt32BE(1)]).toEqual([0, lib.length]);
    }
  });

  it('decodes every ServingStatus the library encodes, and refuses what is not one message', () => {
    const framed = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, 0, b.length]), b]);
    const statuses = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
    expect(statuses.map((status) => servingStatus(framed(check.responseSerialize({ status }))))).toEqual([0, 1, 2, 3]);
    expect(servingStatus(Buffer.from([1, 0, 0, 0, 2, 8, 1]))).toBeUndefined(); // compressed flag
    expect(servingStatus(Buffer.from([0, 0, 0, 0, 3, 8, 1]))).toBeUndefined(); // length beyond the body
    expect(servingStatus(Buffer.from([0, 0, 0, 0, 2, 8, 0x81]))).toBeUndefined(); // truncated varint
    expect(servingStatus(Buffer.from([0, 0, 0, 0, 5, 0x12, 1, 0x41, 8, 2]))).toBe(2); // unknown field 2 skipped
    expect(servingStatus(Buffer.from([0, 0, 0, 0, 0]))).toBe(0); // status absent: proto3's default, UNKNOWN
  });
});

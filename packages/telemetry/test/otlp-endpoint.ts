import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A real OTLP/HTTP endpoint on port 0: records each body and answers with the next scripted reply (else 200). */
export async function endpoint(replies: ((res: ServerResponse) => void)[] = []) {
  const bodies: Buffer[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    bodies.push(Buffer.concat(chunks));
    (replies.shift() ?? ((r: ServerResponse) => r.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()))(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return { url, bodies, [Symbol.asyncDispose]: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Export settings for `url` with nothing configured but the timeout (what resolveOtlpExport gives with no headers…). */
export const plainExport = (url: string, timeoutMillis = 5000) => ({
  protocol: 'http/protobuf' as const,
  url,
  timeoutMillis,
  headers: {},
  compression: 'none' as const,
  tls: {},
});

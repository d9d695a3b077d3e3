import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ClientRequest } from '../src/client-request.ts';

/**
 * What undici does to the proxy's client request when the upstream answers before the body stream ended: it
 * destroys the stream. A request the parser completed must leave the keep-alive connection usable; one still
 * arriving must not (its unread body is still on the wire).
 */
async function server(onRequest: (req: IncomingMessage, res: ServerResponse) => void) {
  const s = createServer({ IncomingMessage: ClientRequest }, onRequest);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as { port: number }).port,
    async [Symbol.asyncDispose]() {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    },
  };
}

/** Writes `chunks` on one connection, waiting `gapMs` between them; resolves with all bytes read until close. */
async function exchange(port: number, chunks: string[], gapMs: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  let got = '';
  socket.setEncoding('utf8').on('data', (d) => (got += d));
  socket.on('error', () => {});
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  for (const c of chunks) {
    socket.write(c);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  if (!socket.destroyed) socket.end();
  await closed;
  return got;
}

const POST = 'POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 7\r\n\r\na=1&b=2';
const GET = 'GET /b HTTP/1.1\r\nhost: x\r\n\r\n';

describe('ClientRequest', () => {
  it('a destroy after the parser completed the body keeps the connection: the next request is answered', async () => {
    await using s = await server((req, res) => {
      const answer = () => {
        if (req.method === 'POST') req.destroy(); // as undici does when the upstream answered first
        res.end(req.url);
      };
      // The body came in the same packet as the headers: complete once the parser has run past them.
      if (req.complete) answer();
      else setImmediate(answer);
    });
    const got = await exchange(s.port, [POST, GET], 100);
    expect(got.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
    expect(got).toContain('/a');
    expect(got.endsWith('/b')).toBe(true);
  });

  it('a destroy while the body is still arriving resets the connection, as node does', async () => {
    await using s = await server((req, res) => {
      req.destroy();
      res.end('never');
    });
    const got = await exchange(s.port, ['POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 7\r\n\r\na=', '1&b=2', GET], 100);
    expect(got).not.toContain('/b');
  });
});

import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Server as NetServer } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Http1AnyRequest, type Http1Response, Http1Server } from '../src/http1-server.ts';

// The issue #19 condition for a server side other than node:http: at least as strict as node's parser. A corpus
// of malformed and smuggling requests goes to node:http (as the proxy configures it) and to http1-server.ts;
// every request node refuses (its handler never sees it) must be refused by the new server too. Where node
// answers a refusal with a status (400, 431, 417), the new server answers the same one.

interface Outcome {
  /** `METHOD URL` of every request the handler saw, in order. */
  seen: string[];
  /** The status of the first response line, 0 when the connection closed without one. */
  status: number;
}

const MAX_HEADER_SIZE = 16 * 1024;
const h = (n: number, ch = 'a') => ch.repeat(n);

/** [name, raw bytes] */
const CORPUS: [string, string][] = [
  ['valid GET (control)', 'GET / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['valid POST with Content-Length (control)', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc'],
  ['valid chunked POST (control)', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
  [
    'Content-Length then Transfer-Encoding',
    'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n',
  ],
  [
    'Transfer-Encoding then Content-Length',
    'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n',
  ],
  ['two Content-Length, different', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
  ['two Content-Length, same', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc'],
  ['Content-Length list', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc'],
  ['Content-Length +3', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc'],
  ['Content-Length -1', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n'],
  ['Content-Length 0x3', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc'],
  ['Content-Length "3 3"', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3 3\r\n\r\nabc'],
  ['Content-Length overflow', 'POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n'],
  ['Transfer-Encoding: identity', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n'],
  ['Transfer-Encoding: xchunked', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding: chunked, identity', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding: gzip (not last chunked)', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc'],
  ['Transfer-Encoding twice', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding with vertical tab', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding obs-fold', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n'],
  ['space before colon', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n'],
  ['space in header name', 'GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n'],
  ['NUL in header name', 'GET / HTTP/1.1\r\nHost: a\r\nX\x00Y: z\r\n\r\n'],
  ['NUL in header value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n'],
  ['CR in header value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n'],
  ['DEL in header value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n'],
  ['empty header name', 'GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n'],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n'],
  ['first header line folded', 'GET / HTTP/1.1\r\n Host: a\r\n\r\n'],
  ['bare LF line ends', 'GET / HTTP/1.1\nHost: a\n\n'],
  ['bare LF after headers', 'GET / HTTP/1.1\r\nHost: a\r\n\n'],
  ['bare CR', 'GET / HTTP/1.1\rHost: a\r\n\r\n'],
  ['no Host on HTTP/1.1', 'GET / HTTP/1.1\r\nX: a\r\n\r\n'],
  ['no Host on HTTP/1.0 (control)', 'GET / HTTP/1.0\r\n\r\n'],
  ['lower-case method', 'get / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['unknown method', 'FOO / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['method with @', 'G@T / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
  ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n'],
  ['HTTP/2.0 request line', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n'],
  ['HTTP/1.10', 'GET / HTTP/1.10\r\nHost: a\r\n\r\n'],
  ['HTTP/0.9 (no version)', 'GET /\r\n\r\n'],
  ['lower-case http version', 'GET / http/1.1\r\nHost: a\r\n\r\n'],
  ['two spaces in request line', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['tab in request line', 'GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['space in target', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['control byte in target', 'GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['NUL in target', 'GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['DEL in target', 'GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['fragment in target', 'GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['absolute-form target (control)', 'GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['asterisk-form OPTIONS (control)', 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['CONNECT', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n'],
  ['leading CRLF before the request', '\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['invalid chunk size', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
  ['chunk size 0x3', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n'],
  ['chunk size overflow', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n'],
  ['chunk size with leading space', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n'],
  ['chunk size with trailing space', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n'],
  ['chunk without CRLF after data', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n'],
  ['chunk size line bare LF', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n'],
  ['chunk extension with bare LF', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n'],
  ['chunk extension (control)', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n'],
  ['chunk extension with CR', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\ry\r\nabc\r\n0\r\n\r\n'],
  ['trailer with NUL', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\x00\r\n\r\n'],
  ['trailer obs-fold', 'POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n'],
  ['Expect: bogus on HTTP/1.0 (control: node looks at Expect on HTTP/1.1 only)', 'GET / HTTP/1.0\r\nExpect: bogus\r\n\r\n'],
  ['Expect: bogus', 'GET / HTTP/1.1\r\nHost: a\r\nExpect: bogus\r\n\r\n'],
  [
    'Upgrade h2c, not allowed (control)',
    'GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
  ],
  // node counts the target, field names and values (here 1 + 4 + 1 + 1 + the value): MAX_HEADER_SIZE - 1, at, over.
  ['header bytes one under the limit', `GET / HTTP/1.1\r\nHost: a\r\nX: ${h(MAX_HEADER_SIZE - 8)}\r\n\r\n`],
  ['header bytes at the limit', `GET / HTTP/1.1\r\nHost: a\r\nX: ${h(MAX_HEADER_SIZE - 7)}\r\n\r\n`],
  ['header bytes one over the limit', `GET / HTTP/1.1\r\nHost: a\r\nX: ${h(MAX_HEADER_SIZE - 6)}\r\n\r\n`],
  ['target over the limit', `GET /${h(MAX_HEADER_SIZE + 10)} HTTP/1.1\r\nHost: a\r\n\r\n`],
  ['many small header lines over the limit', `GET / HTTP/1.1\r\nHost: a\r\n${'X: y\r\n'.repeat(MAX_HEADER_SIZE / 2)}\r\n`],
  ['1000 header fields (control)', `GET / HTTP/1.1\r\nHost: a\r\n${'A: 1\r\n'.repeat(999)}\r\n`],
  ['1001 header fields', `GET / HTTP/1.1\r\nHost: a\r\n${'A: 1\r\n'.repeat(1000)}\r\n`],
  ['HTTP/1.0 with Transfer-Encoding', 'POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
  ['a good request, then garbage', 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\r\n\r\n'],
  [
    'a good request, then a smuggled CL.TE one',
    'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  ],
];

/** Records each request at its head and again when its body is complete (`+body`); answers after the body. */
function handler(seen: string[]) {
  return (req: IncomingMessage | Http1AnyRequest, res: ServerResponse | Http1Response) => {
    const name = `${req.method} ${req.url}`;
    seen.push(name);
    const answer = () => {
      res.writeHead(200, ['content-length', '2']);
      res.end('ok');
    };
    if (!(req instanceof Readable) || (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined)) {
      answer();
      return;
    }
    req.on('error', () => {});
    req.on('end', () => {
      seen.push(`${name} +body`);
      answer();
    });
    req.resume();
  };
}

/** The proxy's clientError answer, reduced to its status (proxy-server.ts onClientError). */
function onClientError(err: Error & { code?: string }, socket: import('node:stream').Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  socket.end(`HTTP/1.1 ${status} X\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
}

async function send(port: number, bytes: string, seen: string[]): Promise<Outcome> {
  seen.length = 0;
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  s.on('error', () => {});
  let out = '';
  s.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  s.end(Buffer.from(bytes, 'latin1'));
  const timer = setTimeout(() => s.destroy(), 2000);
  await once(s, 'close');
  clearTimeout(timer);
  return { seen: [...seen], status: Number(/^HTTP\/1\.1 (\d{3})/.exec(out)?.[1] ?? 0) };
}

const nodeSeen: string[] = [];
const leanSeen: string[] = [];
let nodeServer: Server;
let leanServer: NetServer;

async function listen(server: NetServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

let nodePort: number;
let leanPort: number;
beforeAll(async () => {
  nodeServer = createServer({ maxHeaderSize: MAX_HEADER_SIZE, joinDuplicateHeaders: false }, handler(nodeSeen));
  nodeServer.on('clientError', onClientError);
  leanServer = new Http1Server({ maxHeaderSize: MAX_HEADER_SIZE }, handler(leanSeen));
  leanServer.on('clientError', onClientError);
  nodePort = await listen(nodeServer);
  leanPort = await listen(leanServer);
});
afterAll(() => {
  nodeServer.close();
  nodeServer.closeAllConnections();
  leanServer.close();
});

describe('http1-server.ts against node:http on malformed and smuggling requests', () => {
  it.each(CORPUS)('%s: refused if node refuses it, with the same status', async (_name, bytes) => {
    const node = await send(nodePort, bytes, nodeSeen);
    const lean = await send(leanPort, bytes, leanSeen);
    // Every request the new server's handler saw, node's handler saw too, in the same order (a prefix of it).
    expect(node.seen.slice(0, lean.seen.length)).toEqual(lean.seen);
    // A refusal node answers with a status gets the same status.
    if (node.seen.length === 0 && node.status >= 400) expect(lean.status).toBe(node.status);
  });

  it('the corpus has both: requests node takes and requests node refuses', async () => {
    let taken = 0;
    let refused = 0;
    for (const [, bytes] of CORPUS) {
      const node = await send(nodePort, bytes, nodeSeen);
      if (node.seen.length > 0) taken++;
      else refused++;
    }
    expect(taken).toBeGreaterThan(5);
    expect(refused).toBeGreaterThan(30);
  });
});

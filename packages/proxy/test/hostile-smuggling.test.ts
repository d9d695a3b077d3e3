/**
 * Request smuggling, table-driven, with raw bytes on real sockets: CL.TE, TE.CL, TE.TE with obfuscated
 * `Transfer-Encoding`, duplicate and signed `Content-Length`, chunk-size tricks, bare LF/CR, NUL and control
 * bytes. For each case: the statuses the connection got (a smuggled request would add one), whether the
 * proxy closed it, the complete requests the upstreams received (a smuggled request must never be one), and
 * that no upstream server was counted as failed for the client's fault.
 *
 * Most of this is node's parser (llhttp 9, strict mode): the proxy adds only the HTTP/1.0 + Transfer-Encoding
 * refusal (request-screen.ts). The same table then runs against a real nginx in front of the same upstreams:
 * where tiergate differs on purpose, the case says what nginx does (docs/proxy.md, "Hostile requests").
 *
 * A request whose body turns out malformed after its headers (a bad chunk) was already on its way upstream
 * (bodies stream): the upstream sees that request cut off mid-body, never complete. Only complete requests
 * are compared; nginx buffers the body first, so its upstream sees nothing of these.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTEMPT_CHANNEL, type AttemptEvent } from '../src/index.ts';
import { collect, startTestProxy, type TestProxy } from './helpers.ts';
import { type Nginx, type Recorder, type Reply, type Seen, sendRaw, startNginx, startRecorder } from './hostile.ts';

interface Outcome {
  /** Status of each response on the connection. */
  readonly statuses: readonly number[];
  /** The server closed the connection after them. */
  readonly closed: boolean;
  /**
   * Complete requests the upstreams got, sorted (pipelined requests are proxied concurrently, so their order
   * across the two servers is not fixed): `METHOD target`, and ` <body>` when there is one.
   */
  readonly upstream: readonly string[];
}

interface Case {
  readonly name: string;
  readonly bytes: string;
  readonly tiergate: Outcome;
  /** What nginx does: `same` where tiergate means to agree. */
  readonly nginx: Outcome | 'same';
}

const HOST = 'Host: h.test\r\n';
const ok = (...upstream: string[]): Outcome => ({ statuses: upstream.map(() => 200), closed: false, upstream });
const refused: Outcome = { statuses: [400], closed: true, upstream: [] };
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: h.test\r\n\r\n';
const post = (headers: string, body: string) => `POST /a HTTP/1.1\r\n${HOST}${headers}\r\n${body}`;

const CASES: readonly Case[] = [
  // Controls: correct framing is honoured, pipelined requests are each answered.
  { name: 'plain GET', bytes: `GET /x HTTP/1.1\r\n${HOST}\r\n`, tiergate: ok('GET /x'), nginx: 'same' },
  {
    name: 'pipelined POST (Content-Length) then GET',
    bytes: post('Content-Length: 3\r\n', 'abc') + SMUGGLED,
    tiergate: ok('GET /smuggled', 'POST /a <abc>'),
    nginx: 'same',
  },
  {
    name: 'pipelined POST (chunked) then GET',
    bytes: post('Transfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n') + SMUGGLED,
    tiergate: ok('GET /smuggled', 'POST /a <abc>'),
    nginx: 'same',
  },
  {
    name: 'GET whose Content-Length body holds a request: one request with a body',
    bytes: `GET /a HTTP/1.1\r\n${HOST}Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    tiergate: ok(`GET /a <${SMUGGLED}>`),
    nginx: 'same',
  },
  // CL.TE and TE.CL: both headers at once is refused outright (RFC 9112 §6.1 allows it; nginx does too).
  {
    name: 'CL.TE: Content-Length and Transfer-Encoding',
    bytes: post(`Content-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding: chunked\r\n`, `0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  {
    name: 'TE.CL: Transfer-Encoding then Content-Length',
    bytes: post('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`),
    tiergate: refused,
    nginx: 'same',
  },
  // TE.TE: one side is meant to miss the chunked coding.
  {
    name: 'TE.TE: a second Transfer-Encoding line',
    bytes: post('Transfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n', `0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  {
    name: 'TE.TE: space before the colon, with Content-Length',
    bytes: post('Content-Length: 5\r\nTransfer-Encoding : chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  {
    name: 'TE.TE: xchunked',
    bytes: post('Transfer-Encoding: xchunked\r\n', `0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: { statuses: [501], closed: true, upstream: [] },
  },
  {
    name: 'TE.TE: chunked, identity (chunked not last)',
    bytes: post('Transfer-Encoding: chunked, identity\r\n', `0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: { statuses: [501], closed: true, upstream: [] },
  },
  {
    // llhttp reads chunked (the final coding); the proxy forwards the decoded body in its own framing.
    name: 'TE.TE: identity, chunked',
    bytes: post('Transfer-Encoding: identity, chunked\r\n', '3\r\nabc\r\n0\r\n\r\n'),
    tiergate: ok('POST /a <abc>'),
    nginx: { statuses: [501], closed: true, upstream: [] },
  },
  {
    name: 'TE.TE: upper case CHUNKED',
    bytes: post('Transfer-Encoding: CHUNKED\r\n', '3\r\nabc\r\n0\r\n\r\n'),
    tiergate: ok('POST /a <abc>'),
    nginx: 'same',
  },
  {
    // A tab is optional whitespace (RFC 9110 §5.6.3) for llhttp; nginx keeps it in the value and knows no such coding.
    name: 'TE.TE: tab before the value (optional whitespace)',
    bytes: post('Transfer-Encoding:\tchunked\r\n', '3\r\nabc\r\n0\r\n\r\n'),
    tiergate: ok('POST /a <abc>'),
    nginx: { statuses: [501], closed: true, upstream: [] },
  },
  {
    name: 'TE.TE: vertical tab before the value',
    bytes: post('Transfer-Encoding:\x0bchunked\r\n', `0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: { statuses: [501], closed: true, upstream: [] },
  },
  {
    name: 'TE.TE: value on an obs-fold continuation line',
    bytes: post('Transfer-Encoding:\r\n chunked\r\n', `0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  {
    name: 'Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1: faulty framing)',
    bytes: `POST /a HTTP/1.0\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    tiergate: refused,
    nginx: 'same',
  },
  // Content-Length games.
  { name: 'two equal Content-Length', bytes: post('Content-Length: 3\r\nContent-Length: 3\r\n', 'abc'), tiergate: refused, nginx: 'same' },
  {
    name: 'two different Content-Length',
    bytes: post('Content-Length: 3\r\nContent-Length: 40\r\n', `abc${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  { name: 'Content-Length list "3, 3"', bytes: post('Content-Length: 3, 3\r\n', 'abc'), tiergate: refused, nginx: 'same' },
  { name: 'signed Content-Length +3', bytes: post('Content-Length: +3\r\n', 'abc'), tiergate: refused, nginx: 'same' },
  { name: 'negative Content-Length', bytes: post('Content-Length: -1\r\n', SMUGGLED), tiergate: refused, nginx: 'same' },
  {
    name: 'Content-Length beyond 2^64',
    bytes: post('Content-Length: 99999999999999999999999\r\n', 'abc'),
    tiergate: refused,
    nginx: 'same',
  },
  // Chunk-size tricks: refused once the bad chunk is read (the upstream saw at most a cut request).
  {
    name: 'chunk size overflowing 64 bits',
    bytes: post('Transfer-Encoding: chunked\r\n', `10000000000000003\r\nabc\r\n0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  {
    name: 'negative chunk size',
    bytes: post('Transfer-Encoding: chunked\r\n', `-3\r\nabc\r\n0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  {
    name: 'chunk size with 0x prefix',
    bytes: post('Transfer-Encoding: chunked\r\n', `0x3\r\nabc\r\n0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  {
    // nginx reads the space as whitespace before a (missing) chunk extension; the GET after the body is then
    // an ordinary pipelined request for it, not a smuggled one. llhttp refuses the chunk size.
    name: 'chunk size followed by a space',
    bytes: post('Transfer-Encoding: chunked\r\n', `3 \r\nabc\r\n0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: ok('GET /smuggled', 'POST /a <abc>'),
  },
  {
    name: 'chunk extension (valid)',
    bytes: post('Transfer-Encoding: chunked\r\n', '3;name=value\r\nabc\r\n0\r\n\r\n'),
    tiergate: ok('POST /a <abc>'),
    nginx: 'same',
  },
  {
    name: 'chunk data longer than its size',
    bytes: post('Transfer-Encoding: chunked\r\n', `3\r\nabcd\r\n0\r\n\r\n${SMUGGLED}`),
    tiergate: refused,
    nginx: 'same',
  },
  {
    name: 'chunk lines ended by bare LF',
    bytes: post('Transfer-Encoding: chunked\r\n', `3\nabc\n0\n\n${SMUGGLED}`),
    tiergate: refused,
    nginx: ok('GET /smuggled', 'POST /a <abc>'),
  },
  {
    name: 'trailer fields after the last chunk (dropped, as nginx does)',
    bytes: post('Transfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\nX-Trailer: y\r\n\r\n'),
    tiergate: ok('POST /a <abc>'),
    nginx: 'same',
  },
  // Line endings and bytes that parsers disagree on.
  {
    name: 'request and header lines ended by bare LF',
    bytes: `GET /a HTTP/1.1\nHost: h.test\n\n`,
    tiergate: refused,
    nginx: ok('GET /a'),
  },
  { name: 'one header ended by bare LF', bytes: `GET /a HTTP/1.1\r\nHost: h.test\nX-A: b\r\n\r\n`, tiergate: refused, nginx: ok('GET /a') },
  { name: 'bare CR inside the header block', bytes: `GET /a HTTP/1.1\r\nHost: h.test\rX-A: b\r\n\r\n`, tiergate: refused, nginx: 'same' },
  { name: 'space before the first header', bytes: `GET /a HTTP/1.1\r\n ${HOST}\r\n`, tiergate: refused, nginx: 'same' },
  { name: 'obs-fold in an ordinary header', bytes: `GET /a HTTP/1.1\r\n${HOST}X-A: b\r\n c\r\n\r\n`, tiergate: refused, nginx: 'same' },
  { name: 'NUL in a header name', bytes: `GET /a HTTP/1.1\r\n${HOST}X-\x00A: b\r\n\r\n`, tiergate: refused, nginx: 'same' },
  { name: 'NUL in a header value', bytes: `GET /a HTTP/1.1\r\n${HOST}X-A: b\x00c\r\n\r\n`, tiergate: refused, nginx: 'same' },
  { name: 'NUL in the target', bytes: `GET /a\x00b HTTP/1.1\r\n${HOST}\r\n`, tiergate: refused, nginx: 'same' },
  {
    name: 'control byte 0x01 in a header value',
    bytes: `GET /a HTTP/1.1\r\n${HOST}X-A: b\x01c\r\n\r\n`,
    tiergate: refused,
    nginx: 'same',
  },
  { name: 'DEL in a header value', bytes: `GET /a HTTP/1.1\r\n${HOST}X-A: b\x7fc\r\n\r\n`, tiergate: refused, nginx: 'same' },
  { name: 'control byte in a header name', bytes: `GET /a HTTP/1.1\r\n${HOST}X-\x01A: b\r\n\r\n`, tiergate: refused, nginx: 'same' },
];

/** The complete requests in `seen`, as the table writes them. */
function complete(seen: readonly Seen[]): string[] {
  return seen
    .filter((s) => s.complete)
    .map((s) => (s.body === '' ? s.line : `${s.line} <${s.body}>`))
    .sort();
}

function outcome(reply: Reply, seen: readonly Seen[]): Outcome {
  return { statuses: reply.statuses, closed: reply.closed, upstream: complete(seen) };
}

const log: Seen[] = [];
let a: Recorder;
let b: Recorder;

beforeAll(async () => {
  a = await startRecorder('a', log);
  b = await startRecorder('b', log);
});

afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
  await b?.[Symbol.asyncDispose]();
});

describe('request smuggling through tiergate', () => {
  let p: TestProxy;
  beforeAll(async () => {
    // Two servers, max_fails 1: a failure wrongly blamed on one would show (the only server never fails).
    const servers = [a, b].map((u) => ({ address: u.address, max_fails: 1, fail_timeout: '60s' }));
    p = await startTestProxy({ pools: { app: { algorithm: 'round_robin', servers } } });
  });
  afterAll(() => p?.[Symbol.asyncDispose]());

  it.each(CASES)('$name', async (c) => {
    log.length = 0;
    using attempts = collect<AttemptEvent>(ATTEMPT_CHANNEL);
    const port = p.proxy.addresses()[0]!.port;
    const reply = await sendRaw({ port, host: '127.0.0.1' }, c.bytes);
    expect(outcome(reply, log)).toEqual(c.tiergate);
    expect(attempts.filter((e) => e.failed)).toEqual([]);
    for (const s of p.proxy.status().pools[0]!.servers)
      expect({ server: s.address, fails: s.fails }).toEqual({ server: s.address, fails: 0 });
  });
});

describe('the same bytes through nginx (the oracle)', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await startNginx(
      (dir) => `  upstream app { server ${a.address}; server ${b.address}; keepalive 4; }
  server {
    listen unix:${dir}/front.sock;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }`,
      ['front'],
    );
  });
  afterAll(() => nginx?.[Symbol.asyncDispose]());

  it.each(CASES)('$name', async (c) => {
    log.length = 0;
    const reply = await sendRaw({ path: nginx.sock('front') }, c.bytes);
    // Not whether it closed: after some 400s nginx lingers (lingering_timeout) before closing.
    const { closed: _, ...expected } = c.nginx === 'same' ? c.tiergate : c.nginx;
    const { closed: __, ...got } = outcome(reply, log);
    expect(got).toEqual(expected);
  });
});

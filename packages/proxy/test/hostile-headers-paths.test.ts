/**
 * Header and path abuse, table-driven, with raw bytes on real sockets: traversal in every spelling, encodings,
 * targets that parsers read differently, overlong targets and headers, many headers, huge cookies, repeated
 * and malformed Host, spoofed forwarding headers. For each case: the statuses the connection got, whether the
 * server closed it, which pool's upstream got which target (the route decision and what the upstream sees),
 * selected headers as the upstream got them, and that no server was counted as failed.
 *
 * Routes: `/pub/` and `/internal/` to their own pools, `/norm/` to the pub pool with `forward_path:
 * normalized`, nothing else (404). The same table then runs against a real nginx with the same locations
 * (`proxy_pass http://pool;` without a URI part, `/norm/` with one): where tiergate differs on purpose the
 * case says what nginx does, and docs/proxy.md ("Hostile requests") says why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTEMPT_CHANNEL, type AttemptEvent } from '../src/index.ts';
import { collect, startTestProxy, type TestProxy } from './helpers.ts';
import { type Nginx, type Recorder, type Reply, type Seen, sendRaw, startNginx, startRecorder } from './hostile.ts';

interface Outcome {
  readonly statuses: readonly number[];
  readonly closed: boolean;
  /** `<pool> <METHOD target>` of each request the upstreams got. */
  readonly upstream: readonly string[];
  /** Values of these (lowercase) header names in the first upstream request. */
  readonly headers?: Readonly<Record<string, readonly string[]>>;
}

interface Case {
  readonly name: string;
  readonly bytes: string;
  readonly tiergate: Outcome;
  readonly nginx: Outcome | 'same';
}

const get = (target: string, headers = 'Host: h.test\r\n') => `GET ${target} HTTP/1.1\r\n${headers}\r\n`;
const to = (pool: string, target: string, headers?: Outcome['headers']): Outcome => ({
  statuses: [200],
  closed: false,
  upstream: [`${pool} GET ${target}`],
  ...(headers ? { headers } : {}),
});
const answered = (status: number, closed: boolean): Outcome => ({ statuses: [status], closed, upstream: [] });
const refused = answered(400, true);
const noRoute = answered(404, false);
const LONG = 'a'.repeat(20_000);
const manyHeaders = (n: number) => `Host: h.test\r\n${'a:1\r\n'.repeat(n)}`;

const CASES: readonly Case[] = [
  { name: 'plain path', bytes: get('/pub/x?q=1'), tiergate: to('pub', '/pub/x?q=1'), nginx: 'same' },
  // Traversal: a dot segment must not carry a request into a route its resolved path does not match.
  { name: 'traversal /pub/../admin', bytes: get('/pub/../admin'), tiergate: noRoute, nginx: 'same' },
  { name: 'traversal with %2e%2e', bytes: get('/pub/%2e%2e/admin'), tiergate: noRoute, nginx: 'same' },
  { name: 'traversal with %2F', bytes: get('/pub%2F..%2Fadmin'), tiergate: noRoute, nginx: 'same' },
  { name: 'traversal with %2E%2E and %2F mixed', bytes: get('/pub/%2E%2E%2Fadmin'), tiergate: noRoute, nginx: 'same' },
  {
    // nginx forwards the raw target to the pool of the route the resolved path matched; tiergate sends that path.
    name: 'traversal into another route',
    bytes: get('/pub/../internal/x?q=1'),
    tiergate: to('internal', '/internal/x?q=1'),
    nginx: to('internal', '/pub/../internal/x?q=1'),
  },
  {
    // nginx: /pub/admin; a WHATWG URL parser given the raw target: /admin (it does not decode %2F).
    name: 'encoded slash, then a dot segment',
    bytes: get('/pub%2Fx/../admin'),
    tiergate: to('pub', '/pub/admin'),
    nginx: to('pub', '/pub%2Fx/../admin'),
  },
  {
    // nginx: /pub/x; new URL('//pub/x', base) reads host `pub`, path /x.
    name: 'leading double slash',
    bytes: get('//pub/x'),
    tiergate: to('pub', '/pub/x'),
    nginx: to('pub', '//pub/x'),
  },
  { name: 'above the root: /..', bytes: get('/..'), tiergate: refused, nginx: 'same' },
  { name: 'above the root: /pub/../../internal/x', bytes: get('/pub/../../internal/x'), tiergate: refused, nginx: 'same' },
  { name: 'above the root, encoded', bytes: get('/pub/%2e%2e/%2e%2e/x'), tiergate: refused, nginx: 'same' },
  {
    // Tomcat reads `..;` as `..`: the /pub pool would serve /internal/x. nginx passes it on.
    name: 'dot segment with ;parameters',
    bytes: get('/pub/..;/internal/x'),
    tiergate: refused,
    nginx: to('pub', '/pub/..;/internal/x'),
  },
  {
    // The WHATWG URL parser and Windows servers take `\` for `/`.
    name: 'dot segment between backslashes',
    bytes: get('/pub/..\\..\\internal\\x'),
    tiergate: refused,
    nginx: to('pub', '/pub/..\\..\\internal\\x'),
  },
  {
    name: 'backslash without dots: sent escaped',
    bytes: get('/pub/a\\b'),
    tiergate: to('pub', '/pub/a%5Cb'),
    nginx: to('pub', '/pub/a\\b'),
  },
  {
    // A fragment is not part of a request target (RFC 9112 §3.2). nginx routes on the part before `#` and
    // forwards it all: an upstream that does not cut at `#` (Go's ParseRequestURI) cleans this to /internal.
    name: 'fragment in the target: cut',
    bytes: get('/pub/x#/../../internal'),
    tiergate: to('pub', '/pub/x'),
    nginx: to('pub', '/pub/x#/../../internal'),
  },
  // Encodings: escapes alone are forwarded as the client wrote them.
  { name: 'encoded slash in a segment', bytes: get('/pub/group%2Fproject'), tiergate: to('pub', '/pub/group%2Fproject'), nginx: 'same' },
  {
    name: 'escapes and an encoded query',
    bytes: get('/pub/a%20b?q=%2e%2e%2F'),
    tiergate: to('pub', '/pub/a%20b?q=%2e%2e%2F'),
    nginx: 'same',
  },
  { name: 'UTF-8 escapes', bytes: get('/pub/%C3%A9t%C3%A9'), tiergate: to('pub', '/pub/%C3%A9t%C3%A9'), nginx: 'same' },
  { name: 'escape of a byte that is not UTF-8', bytes: get('/pub/%FF'), tiergate: to('pub', '/pub/%FF'), nginx: 'same' },
  { name: 'malformed escape', bytes: get('/pub/a%zz'), tiergate: refused, nginx: 'same' },
  { name: 'truncated escape', bytes: get('/pub/a%2'), tiergate: refused, nginx: 'same' },
  { name: 'encoded NUL', bytes: get('/pub/a%00b'), tiergate: refused, nginx: 'same' },
  {
    name: 'normalized route: decoded and re-escaped',
    bytes: get('/norm/a%2Fb%7e%41%20c'),
    tiergate: to('pub', '/norm/a/b~A%20c'),
    nginx: 'same',
  },
  { name: 'normalized route: dot segments resolved', bytes: get('/norm/x/../y/./z'), tiergate: to('pub', '/norm/y/z'), nginx: 'same' },
  // Request-target forms.
  {
    name: 'absolute-form target',
    bytes: get('http://h.test/pub/x'),
    tiergate: refused,
    nginx: to('pub', '/pub/x'),
  },
  { name: 'asterisk-form target', bytes: get('*'), tiergate: refused, nginx: 'same' },
  // Sizes. tiergate: limits.max_header_size (16 KiB) and node's cap of 1000 fields (maxHeadersCount 2000 counts
  // names and values); nginx: 4 buffers of 8 KiB and, in Debian's 1.22, at most 1000 header lines too.
  { name: 'overlong target (20 KB)', bytes: get(`/pub/${LONG}`), tiergate: answered(431, true), nginx: answered(414, true) },
  {
    name: 'overlong header value (20 KB)',
    bytes: get('/pub/x', `Host: h.test\r\nX-Big: ${LONG}\r\n`),
    tiergate: answered(431, true),
    nginx: refused,
  },
  {
    name: 'huge cookie (20 KB)',
    bytes: get('/pub/x', `Host: h.test\r\nCookie: a=${LONG}\r\n`),
    tiergate: answered(431, true),
    nginx: refused,
  },
  {
    name: 'large cookie (7 KB) passes whole',
    bytes: get('/pub/x', `Host: h.test\r\nCookie: a=${'c'.repeat(7000)}\r\n`),
    tiergate: to('pub', '/pub/x', { cookie: [`a=${'c'.repeat(7000)}`] }),
    nginx: 'same',
  },
  {
    name: '1000 header fields pass whole',
    bytes: get('/pub/x', manyHeaders(999)),
    tiergate: to('pub', '/pub/x', { a: Array(999).fill('1') }),
    nginx: 'same',
  },
  { name: '1001 header fields', bytes: get('/pub/x', manyHeaders(1000)), tiergate: answered(431, true), nginx: refused },
  // Host (RFC 9112 §3.2).
  { name: 'two Host fields', bytes: get('/pub/x', 'Host: h.test\r\nHost: evil.test\r\n'), tiergate: refused, nginx: 'same' },
  { name: 'two equal Host fields', bytes: get('/pub/x', 'Host: h.test\r\nHost: h.test\r\n'), tiergate: refused, nginx: 'same' },
  { name: 'empty Host', bytes: get('/pub/x', 'Host:\r\n'), tiergate: refused, nginx: 'same' },
  { name: 'Host with a slash', bytes: get('/pub/x', 'Host: h.test/x\r\n'), tiergate: refused, nginx: 'same' },
  { name: 'Host with two dots in a row', bytes: get('/pub/x', 'Host: h..test\r\n'), tiergate: refused, nginx: 'same' },
  { name: 'Host missing in HTTP/1.1', bytes: 'GET /pub/x HTTP/1.1\r\n\r\n', tiergate: refused, nginx: 'same' },
  // Forwarding headers from an untrusted client.
  {
    name: 'spoofed Forwarded',
    bytes: get('/pub/x', 'Host: h.test\r\nForwarded: for=6.6.6.6;proto=https\r\n'),
    tiergate: to('pub', '/pub/x', { forwarded: [] }),
    nginx: to('pub', '/pub/x', { forwarded: ['for=6.6.6.6;proto=https'] }),
  },
  {
    name: 'spoofed X-Forwarded-Host and -Proto',
    bytes: get('/pub/x', 'Host: h.test\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\n'),
    tiergate: to('pub', '/pub/x', { 'x-forwarded-host': ['h.test'], 'x-forwarded-proto': ['http'] }),
    nginx: to('pub', '/pub/x', { 'x-forwarded-host': ['evil.test'], 'x-forwarded-proto': ['https'] }),
  },
  {
    name: 'X_Forwarded_For (underscore twin)',
    bytes: get('/pub/x', 'Host: h.test\r\nX_Forwarded_For: 6.6.6.6\r\n'),
    tiergate: to('pub', '/pub/x', { x_forwarded_for: [] }),
    nginx: 'same',
  },
  {
    name: 'byte 0xFF in a header value passes unchanged',
    bytes: get('/pub/x', 'Host: h.test\r\nX-A: b\xffc\r\n'),
    tiergate: to('pub', '/pub/x', { 'x-a': ['b\xffc'] }),
    nginx: 'same',
  },
];

function outcome(reply: Reply, seen: readonly Seen[], names: readonly string[]): Outcome {
  const first = seen[0]?.rawHeaders ?? [];
  const headers: Record<string, string[]> = {};
  for (const name of names) headers[name] = [];
  for (let i = 0; i < first.length; i += 2) headers[first[i]!.toLowerCase()]?.push(first[i + 1]!);
  return {
    statuses: reply.statuses,
    closed: reply.closed,
    upstream: seen.map((s) => `${s.server} ${s.line}`),
    ...(names.length > 0 ? { headers } : {}),
  };
}

/** `closed` is compared only when `withClose`: after some 400s nginx lingers (lingering_timeout) before closing. */
function check(expected: Outcome, reply: Reply, withClose: boolean): void {
  const { closed, ...got } = outcome(reply, log, Object.keys(expected.headers ?? {}));
  const { closed: want, ...rest } = expected;
  expect(got).toEqual(rest);
  if (withClose) expect(closed).toBe(want);
}

const log: Seen[] = [];
const recorders: Recorder[] = [];

beforeAll(async () => {
  for (const name of ['pub', 'pub', 'internal', 'internal']) recorders.push(await startRecorder(name, log));
});

afterAll(async () => {
  for (const r of recorders) await r[Symbol.asyncDispose]();
});

describe('header and path abuse through tiergate', () => {
  let p: TestProxy;
  beforeAll(async () => {
    // Two servers per pool, max_fails 1: a failure wrongly blamed on one would show.
    const servers = (name: string) =>
      recorders.filter((r) => r.name === name).map((r) => ({ address: r.address, max_fails: 1, fail_timeout: '60s' }));
    p = await startTestProxy({
      routes: [
        { path: '/pub/', pool: 'pub' },
        { path: '/internal/', pool: 'internal' },
        { path: '/norm/', pool: 'pub', forward_path: 'normalized' },
      ],
      pools: { pub: { servers: servers('pub') }, internal: { servers: servers('internal') } },
    });
  });
  afterAll(() => p?.[Symbol.asyncDispose]());

  it.each(CASES)('$name', async (c) => {
    log.length = 0;
    using attempts = collect<AttemptEvent>(ATTEMPT_CHANNEL);
    const reply = await sendRaw({ port: p.proxy.addresses()[0]!.port, host: '127.0.0.1' }, c.bytes);
    check(c.tiergate, reply, true);
    expect(attempts.filter((e) => e.failed)).toEqual([]);
    for (const pool of p.proxy.status().pools)
      for (const s of pool.servers) expect({ server: s.address, fails: s.fails }).toEqual({ server: s.address, fails: 0 });
  });
});

describe('the same bytes through nginx (the oracle)', () => {
  let nginx: Nginx;
  beforeAll(async () => {
    const servers = (name: string) =>
      recorders
        .filter((r) => r.name === name)
        .map((r) => `server ${r.address};`)
        .join(' ');
    nginx = await startNginx(
      (dir) => `  upstream pub { ${servers('pub')} keepalive 4; }
  upstream internal { ${servers('internal')} keepalive 4; }
  server {
    listen unix:${dir}/front.sock;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    location /pub/ { proxy_pass http://pub; }
    location /internal/ { proxy_pass http://internal; }
    location /norm/ { proxy_pass http://pub/norm/; }
    location / { return 404; }
  }`,
      ['front'],
    );
  });
  afterAll(() => nginx?.[Symbol.asyncDispose]());

  it.each(CASES)('$name', async (c) => {
    log.length = 0;
    const reply = await sendRaw({ path: nginx.sock('front') }, c.bytes);
    check(c.nginx === 'same' ? c.tiergate : c.nginx, reply, false);
  });
});

import { once } from 'node:events';
import { get, request as httpRequest, type IncomingMessage } from 'node:http';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_CHANNEL, type AttemptEvent, REQUEST_CHANNEL, type RequestEvent } from '../src/index.ts';
import { collect, named, server, startTestProxy, startUpstream } from './helpers.ts';

/**
 * Upstreams that misbehave on the wire (issue 17, items 3 and 18), table-driven. A raw TCP server plays
 * the hostile upstream; a healthy node:http server shares the pool (round robin, hostile first). For each
 * case: what the client gets, what the hostile upstream saw, whether the hostile server was counted failed
 * (its own fault: yes, except where a case says why not), and that the healthy one never was.
 */

/** What the hostile upstream does once it has read a request head (`head`). */
type Behaviour = (socket: Socket, head: string) => void;

interface RawUpstream extends AsyncDisposable {
  readonly address: string;
  /** Request heads received, in order. */
  readonly heads: string[];
}

/** A raw TCP upstream: reads one request head per connection, then lets `behave` answer (or not). */
async function rawUpstream(behave: Behaviour): Promise<RawUpstream> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      heads.push(buf.slice(0, end));
      behave(s, buf.slice(0, end));
    };
    s.on('data', onData);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    address: `127.0.0.1:${(srv.address() as AddressInfo).port}`,
    heads,
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

/** What the client saw, through node's HTTP client (it reports 1xx as 'information'). */
interface ClientView {
  /** Interim responses received. */
  readonly interim: number[];
  /** Final status, 0 when none came. */
  readonly status: number;
  readonly body: string;
  /** The final response arrived whole (false: cut). */
  readonly complete: boolean;
}

function clientGet(url: string, body?: Buffer): Promise<ClientView> {
  return new Promise((resolve) => {
    const interim: number[] = [];
    let status = 0;
    let text = '';
    let settled = false;
    const done = (complete: boolean) => {
      if (settled) return;
      settled = true;
      resolve({ interim, status, body: text, complete });
    };
    const opts = { agent: false, method: body ? 'PUT' : 'GET', headers: { connection: 'close' } };
    const req = (body ? httpRequest : get)(url, opts, (res: IncomingMessage) => {
      status = res.statusCode!;
      res.setEncoding('latin1');
      res.on('data', (c: string) => (text += c.length > 64 ? `${c.slice(0, 64)}…` : c));
      res.on('end', () => done(res.complete));
      res.on('error', () => done(false));
      res.on('close', () => done(res.complete));
    });
    req.on('information', (info) => interim.push(info.statusCode));
    req.on('error', () => done(false));
    if (body) req.end(body);
    else req.end();
  });
}

interface Case {
  readonly name: string;
  readonly behave: Behaviour;
  /** PUT this body instead of a GET. */
  readonly upload?: Buffer;
  /** What the client gets (`interim` and `body` only when given). */
  readonly client: Partial<ClientView>;
  /** What the proxy logged for the request: status and error code. */
  readonly event: { status: number; error: string | undefined };
  /** The hostile upstream saw the request head (some cases: it saw nothing else). */
  readonly hostileSawRequest: boolean;
  /** The hostile server's attempt counted as failed (passive health). */
  readonly blamed: boolean;
  /** The error its attempt ended with (AttemptEvent.error), where it tells which deadline fired. */
  readonly attemptError?: string;
}

const head200 = (extra: string) => `HTTP/1.1 200 OK\r\n${extra}\r\n`;

const CASES: readonly Case[] = [
  {
    name: 'truncated body: Content-Length 100, 10 bytes, close → the client is cut, never a short "complete" body',
    behave: (s) => s.end(`${head200('Content-Length: 100\r\n')}0123456789`),
    client: { status: 200, complete: false },
    event: { status: 200, error: 'TG_PROXY_UPSTREAM_RESET' },
    hostileSawRequest: true,
    blamed: true,
  },
  {
    name: 'bad chunking: an invalid chunk size after the head → the client is cut',
    behave: (s) => s.end(`${head200('Transfer-Encoding: chunked\r\n')}5\r\nhello\r\nzz\r\nnope\r\n`),
    client: { status: 200, complete: false },
    event: { status: 200, error: 'TG_PROXY_UPSTREAM_ERROR' },
    hostileSawRequest: true,
    blamed: true,
  },
  {
    name: 'lying Content-Length (shorter than what follows) → the declared 5 bytes reach the client, the rest is dropped',
    behave: (s) => s.end(`${head200('Content-Length: 5\r\n')}helloHTTP/1.1 200 OK\r\nX-Smuggled: 1\r\n\r\n`),
    client: { status: 200, body: 'hello', complete: true },
    event: { status: 200, error: undefined },
    hostileSawRequest: true,
    blamed: false,
  },
  {
    name: 'reset mid-body (RST after part of a chunked body) → the client is cut',
    behave: (s) => {
      s.write(`${head200('Transfer-Encoding: chunked\r\n')}5\r\nhello\r\n`);
      setTimeout(() => s.resetAndDestroy(), 50);
    },
    client: { status: 200, complete: false },
    event: { status: 200, error: 'TG_PROXY_UPSTREAM_RESET' },
    hostileSawRequest: true,
    blamed: true,
  },
  {
    name: 'never answering → response_headers timeout, retried on the healthy server',
    behave: () => {},
    client: { status: 200, body: 'healthy', complete: true },
    // The event keeps the error of the attempt that was retried.
    event: { status: 200, error: 'TG_PROXY_UPSTREAM_TIMEOUT' },
    hostileSawRequest: true,
    blamed: true,
  },
  {
    name: '103 Early Hints, then 200 → the hint (its Link) reaches the client first; nothing is blamed',
    behave: (s) =>
      s.end(
        'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style, </b.js>; rel=preload; as=script\r\n\r\n' +
          `${head200('Content-Length: 2\r\n')}ok`,
      ),
    client: { interim: [103], status: 200, body: 'ok', complete: true },
    event: { status: 200, error: undefined },
    hostileSawRequest: true,
    blamed: false,
  },
  {
    name: '102 Processing, then 200 → the 102 is dropped (nginx-like), the 200 passes',
    behave: (s) => s.end(`HTTP/1.1 102 Processing\r\n\r\n${head200('Content-Length: 2\r\n')}ok`),
    client: { interim: [], status: 200, body: 'ok', complete: true },
    event: { status: 200, error: undefined },
    hostileSawRequest: true,
    blamed: false,
  },
  {
    name: '1xx flood (a 103 every 20 ms, no final answer) → at most 4 hints passed, response_headers not extended, retried',
    behave: (s) => {
      const t = setInterval(() => {
        if (s.destroyed) clearInterval(t);
        else s.write('HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload\r\n\r\n');
      }, 20);
      s.on('close', () => clearInterval(t));
    },
    client: { interim: [103, 103, 103, 103], status: 200, body: 'healthy', complete: true },
    event: { status: 200, error: 'TG_PROXY_UPSTREAM_TIMEOUT' },
    hostileSawRequest: true,
    blamed: true,
  },
  {
    name: 'never reading the request body → timeouts.send (proxy_send_timeout) → 504, counted against it',
    behave: (s) => s.pause(),
    upload: Buffer.alloc(32 * 1024 ** 2, 'u'), // more than the loopback socket buffers hold
    client: {},
    event: { status: 504, error: 'TG_PROXY_UPSTREAM_TIMEOUT' },
    hostileSawRequest: true,
    blamed: true,
    // timeouts.send fired, not response_headers: the upstream is timed on the request only once it is sent.
    attemptError: 'TG_UPSTREAM_SEND_TIMEOUT',
  },
];

describe('hostile upstreams', () => {
  for (const c of CASES) {
    it(c.name, { timeout: 15_000 }, async () => {
      await using hostile = await rawUpstream(c.behave);
      await using healthy = await startUpstream(named('healthy'));
      await using p = await startTestProxy({
        limits: { max_body_size: 0 },
        pools: {
          app: {
            algorithm: 'round_robin',
            servers: [
              { address: hostile.address, max_fails: 1, fail_timeout: '1m' },
              server(healthy, { max_fails: 1, fail_timeout: '1m' }),
            ],
            timeouts: { response_headers: '400ms', idle: '400ms', send: '400ms' },
          },
        },
      });
      using attempts = collect<AttemptEvent>(ATTEMPT_CHANNEL);
      using requests = collect<RequestEvent>(REQUEST_CHANNEL);
      const view = await clientGet(`${p.url}/x`, c.upload);
      const until = Date.now() + 5000;
      while (requests.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));

      expect(view).toMatchObject(c.client);
      expect(requests.map((e) => ({ status: e.status, error: e.error }))).toEqual([c.event]);
      expect(hostile.heads.length).toBe(c.hostileSawRequest ? 1 : 0);
      if (c.hostileSawRequest) expect(hostile.heads[0]).toMatch(/^(GET|PUT) \/x HTTP\/1\.1\r\n/);
      const byServer = (address: string) => attempts.filter((e) => e.upstream === address).map((e) => e.failed);
      expect(byServer(hostile.address)).toEqual([c.blamed]);
      if (c.attemptError) expect(attempts.find((e) => e.upstream === hostile.address)?.error).toBe(c.attemptError);
      expect(byServer(healthy.address).every((f) => !f)).toBe(true);
      const [h, ok] = p.proxy.status().pools[0]!.servers;
      expect([h!.failed, ok!.failed, ok!.fails]).toEqual([c.blamed, false, 0]);
      expect(p.proxy.status().inFlight).toBe(0);
    });
  }
});

import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_CHANNEL, type AttemptEvent } from '../src/index.ts';
import { collect, fetchText, startTestProxy, startUpstream } from './helpers.ts';

/**
 * Slowloris and friends (issue 17, items 1, 2 and 18): clients that are slow or stop, table-driven. For
 * each case: what the client gets, what the upstream saw, and that no server was counted failed (both
 * servers of a `max_fails: 1` pool stay usable, every attempt is released as not failed). The timeouts are
 * short and apart, so a case can only pass for the right reason: `response_headers` (200 ms) is the
 * shortest, and it used to fire on a stalled upload and mark the server failed; then `client_header_timeout`
 * and `send_timeout` (400 ms), `client_body_timeout` (800 ms), `client_request_timeout` (1.5 s).
 */

const BIG = Buffer.alloc(32 * 1024 ** 2, 'b'); // more than the loopback socket buffers hold

/** What the upstreams saw of one request. */
interface Seen {
  url: string;
  bytes: number;
  /** The whole request body arrived. */
  complete: boolean;
  /** The response was cut before it was all written (its connection closed under it). */
  cut: boolean;
}

/** One step of a raw client: bytes to write, or milliseconds to wait. */
type Step = string | number;

interface ClientOutcome {
  /** Everything received, latin1. */
  text: string;
  /** The proxy closed (or reset) the connection before the client gave up. */
  closed: boolean;
}

/**
 * A raw TCP client: runs `steps`, then reads until the proxy closes or `ms` pass. With `stopReading`, it
 * reads nothing until `stopReading` ms after its last step (the kernel buffers fill, the proxy's writes
 * stop draining), then reads what is left.
 */
function rawClient(port: number, steps: readonly Step[], ms: number, stopReading?: number): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    const s = connect(port, '127.0.0.1');
    if (stopReading !== undefined) s.pause();
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {
      closed = true;
    });
    s.on('close', () => {
      closed = true;
      finish();
    });
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    s.on('connect', async () => {
      for (const step of steps) {
        if (typeof step === 'number') await new Promise((r) => setTimeout(r, step));
        else s.write(step);
      }
      if (stopReading !== undefined) {
        await new Promise((r) => setTimeout(r, stopReading));
        s.resume();
      }
      timer = setTimeout(finish, ms);
    });
  });
}

interface Case {
  readonly name: string;
  readonly steps: readonly Step[];
  /** Client stops reading for this long after its last step. */
  readonly stopReading?: number;
  /** How the client's side ends: its first status line, and whether the proxy closed the connection. */
  readonly status: string;
  readonly closed: boolean;
  /** The client must receive less than the whole response (bytes after the head). */
  readonly truncated?: boolean;
  /** What the upstreams saw. */
  readonly upstream: readonly { bytes: unknown; complete: boolean; cut: boolean }[];
}

const CASES: readonly Case[] = [
  {
    name: 'slow headers (never finished) → 408 from client_header_timeout; the upstream sees nothing',
    steps: ['GET / HTTP/1.1\r\nHost: t\r\nX-Slow: a'],
    status: 'HTTP/1.1 408 ',
    closed: true,
    upstream: [],
  },
  {
    name: 'body stalled after 10 of 100 bytes → 408 from client_body_timeout; the upstream sees the request aborted',
    steps: ['POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789'],
    status: 'HTTP/1.1 408 ',
    closed: true,
    upstream: [{ bytes: 10, complete: false, cut: true }],
  },
  {
    name: 'Expect: 100-continue, then no body → 100, then 408; the upstream sees nothing (undici sends the head with the first body byte)',
    steps: ['POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n'],
    status: 'HTTP/1.1 100 ',
    closed: true,
    upstream: [],
  },
  {
    name: 'slow body: gaps longer than response_headers, shorter than client_body_timeout → 200, all of it upstream',
    steps: ['PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n', 'abc', 400, 'def', 400, 'ghi'],
    status: 'HTTP/1.1 200 ',
    closed: false,
    upstream: [{ bytes: 9, complete: true, cut: false }],
  },
  {
    name: 'body trickled a byte at a time, each gap under client_body_timeout → 408 from client_request_timeout (the total)',
    steps: ['POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n', ...Array.from({ length: 12 }, () => ['x', 250]).flat()],
    status: 'HTTP/1.1 408 ',
    closed: true,
    upstream: [{ bytes: expect.any(Number), complete: false, cut: true }],
  },
  {
    name: 'a client that stops reading a large response → cut after send_timeout; the upstream connection is freed',
    steps: ['GET /big HTTP/1.1\r\nHost: t\r\n\r\n'],
    stopReading: 2000,
    status: 'HTTP/1.1 200 ',
    closed: true,
    truncated: true,
    upstream: [{ bytes: 0, complete: true, cut: true }],
  },
];

describe('hostile slow clients', () => {
  for (const c of CASES) {
    it(c.name, { timeout: 15_000 }, async () => {
      const seen: Seen[] = [];
      const handler = (req: IncomingMessage, res: ServerResponse) => {
        const s: Seen = { url: req.url!, bytes: 0, complete: false, cut: false };
        seen.push(s);
        req.on('data', (b: Buffer) => (s.bytes += b.length));
        res.on('close', () => (s.cut = !res.writableFinished));
        req.on('end', () => {
          s.complete = true;
          if (req.url === '/big') res.end(BIG);
          else res.end(`got ${s.bytes}`);
        });
      };
      await using a = await startUpstream(handler);
      await using b = await startUpstream(handler);
      const failing = { max_fails: 1, fail_timeout: '1m' };
      await using p = await startTestProxy({
        limits: { client_header_timeout: '400ms', client_body_timeout: '800ms', send_timeout: '400ms', client_request_timeout: '1500ms' },
        pools: {
          app: {
            servers: [
              { address: a.address, ...failing },
              { address: b.address, ...failing },
            ],
            timeouts: { response_headers: '200ms', idle: '200ms' },
          },
        },
      });
      using attempts = collect<AttemptEvent>(ATTEMPT_CHANNEL);
      const port = p.proxy.addresses()[0]!.port;
      const out = await rawClient(port, c.steps, 1200, c.stopReading);

      expect(out.text.slice(0, c.status.length)).toBe(c.status);
      if (c.status.includes('100')) expect(out.text).toMatch(/\r\n\r\nHTTP\/1\.1 408 /);
      expect(out.closed).toBe(c.closed);
      if (c.truncated) expect(out.text.length - out.text.indexOf('\r\n\r\n') - 4).toBeLessThan(BIG.length);
      // The upstream's view settles once its connection closed: wait (bounded) for the proxy to be idle.
      const until = Date.now() + 3000;
      while ((p.proxy.status().inFlight > 0 || seen.some((s) => !s.cut && !s.complete)) && Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 50));
      expect(seen.map(({ bytes, complete, cut }) => ({ bytes, complete, cut }))).toEqual(c.upstream);
      // No server was blamed: every attempt released as not failed, both servers usable and idle.
      expect(attempts.filter((e) => e.failed)).toEqual([]);
      const servers = p.proxy.status().pools[0]!.servers;
      expect(servers.map((s) => ({ fails: s.fails, failed: s.failed, active: s.active }))).toEqual([
        { fails: 0, failed: false, active: 0 },
        { fails: 0, failed: false, active: 0 },
      ]);
      const follow = [await fetchText(`${p.url}/echo`), await fetchText(`${p.url}/echo`)];
      expect(follow.map((r) => r.status)).toEqual([200, 200]);
    });
  }
});

import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  constants,
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type SecureServerOptions,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket, TlsOptions } from 'node:tls';
import type { DeepReadonly, ProxyConfig } from '@tiergate/config';
import { ClientRequest } from './client-request.ts';
import { openStreams, outputWaiting, sessionSocket, useStreamTable } from './h2-stream-table.ts';
import { Http1Server } from './http1-server.ts';
import { type Http2StreamRequestLike, type Http2StreamResponse, serveHttp2Stream } from './http2-stream.ts';

export { http1RawHeaders } from './http2-stream.ts';

/**
 * HTTP/2 to clients (nginx `http2 on`): node:http2's core API, each stream served through the request and
 * response facades of http2-stream.ts, so the exchange (exchange.ts) sees an h2 stream through the same
 * surface as an HTTP/1.1 request: the request as an HTTP/1.1 hop carries it (`:authority` as `Host`, no
 * pseudo-header fields, split `cookie` fields joined, RFC 9113 §8.2.3), the response without the
 * connection-specific fields HTTP/2 forbids (RFC 9113 §8.2.2; a `Connection: close` the proxy adds while
 * draining or after an error has no meaning on a stream: a draining session gets GOAWAY, proxy-server.ts).
 *
 * The session limits are nghttp2's own, through node's options (docs/proxy.md, HTTP/2): nothing here counts
 * frames by hand.
 */

/** The `limits` of the proxy section that shape an HTTP/2 session. */
type Limits = DeepReadonly<ProxyConfig>['limits'];

/** How far past max_header_size an h2 header list is still read, to be answered 431 (http2Settings). */
export const HEADER_LIST_RESET_FACTOR = 2;

/** The SETTINGS an h2 session advertises, from `limits` (a reload applies them to sessions opened after it). */
export function http2Settings(limits: Limits): Settings {
  return {
    maxConcurrentStreams: limits.http2_max_concurrent_streams,
    // The header block as HPACK counts it (names + values + 32 per field). node checks this setting in C++
    // as the block arrives and resets a stream whose list exceeds it (ENHANCE_YOUR_CALM) before JS ever sees
    // it, so nothing could answer it. Twice max_header_size lets a list between the two reach proxy-server.ts,
    // which answers 431 as for HTTP/1.1 (and nginx); only a list past twice the limit is reset unanswered.
    maxHeaderListSize: HEADER_LIST_RESET_FACTOR * limits.max_header_size,
    // The proxy never pushes; a client is told so.
    enablePush: false,
  };
}

/**
 * A listener's HTTP/2 server: with `tls`, ALPN `h2` and `http/1.1` on one port; without, cleartext h2c with
 * prior knowledge only. h2 streams go to `onStream` (http2-stream.ts). The HTTP/1.1 connections of a TLS port
 * (ALPN `http/1.1`, or none) go to `http1`: the lean server (http1-server.ts) takes the socket, or, as a
 * request handler, node's HTTP/1.1 server code serves them with ClientRequest, as on a plain HTTPS listener
 * (`http1_server: node`).
 */
export function createHttp2Listener(
  tls: TlsOptions | undefined,
  limits: Limits,
  http1: Http1Server | ((req: IncomingMessage, res: ServerResponse) => void),
  onStream: (req: Http2StreamRequestLike, res: Http2StreamResponse) => void,
): Http2SecureServer | Http2Server {
  const options: SecureServerOptions = {
    settings: http2Settings(limits),
    Http1IncomingMessage: ClientRequest,
    // Rapid reset (CVE-2023-44487): nghttp2's token bucket of client RST_STREAMs, then GOAWAY.
    streamResetBurst: limits.http2_reset_burst,
    streamResetRate: limits.http2_reset_rate,
    // node:http(s) servers disable Nagle on their sockets, node:http2's do not: a response written in several
    // chunks (a proxied body) then waited for the client's delayed ACK, 40 ms a time (HTTPS/1.1 at 64 KiB:
    // 34 req/s instead of ~600 in loadtest/tls-bench.ts).
    noDelay: true,
  };
  // allowHTTP1 puts `http/1.1` in the ALPN list (and is what sends those connections to node's HTTP/1.1 code).
  const server = tls ? createSecureServer({ ...options, ...tls, allowHTTP1: true }) : createServer(options);
  if (http1 instanceof Http1Server) {
    if (tls) {
      // node's listener makes an h2 session of an `h2` connection and hands any other to its HTTP/1.1 code:
      // the others go to the lean server instead.
      const [h2Connection] = server.listeners('secureConnection') as ((this: Http2SecureServer, s: TLSSocket) => void)[];
      if (!h2Connection) throw new Error('node:http2 secure server without its connection listener');
      server.removeAllListeners('secureConnection');
      server.on('secureConnection', function (this: Http2SecureServer, socket: TLSSocket) {
        if (socket.alpnProtocol === 'h2') h2Connection.call(this, socket);
        else http1.accept(socket);
      });
    }
  } else {
    // node serves h2 streams through its compatibility API (two stream objects per h2 stream) as soon as the
    // server has a 'request' listener, which node's HTTP/1.1 connections need: that 'stream' listener is
    // removed, so each stream is served once, by the core API (http2-stream.ts).
    server.on('request', http1);
    for (const l of server.listeners('stream')) server.off('stream', l as () => void);
  }
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) =>
    serveHttp2Stream(stream, headers, raw, onStream),
  );
  return server;
}

/**
 * The h2 sessions of one listener, for drain (GOAWAY), forced shutdown, and `client_header_timeout`.
 *
 * A header block (HEADERS, then CONTINUATION frames until END_HEADERS) must arrive whole within
 * `client_header_timeout`, as a request's headers must over HTTP/1.1 (nginx applies the same timeout to an
 * h2 connection with a frame unfinished). nghttp2 caps a block at a few CONTINUATION frames, but each one
 * restarted the session's idle timer (`keepalive_timeout`, 75 s): a client that sent HEADERS without
 * END_HEADERS and then nothing held the connection that long, and one that dribbled CONTINUATIONs ~9 times
 * as long. Nor could the session serve anything meanwhile, since no other frame may come between a block's
 * frames (RFC 9113 §6.10). node tells JS of a stream only once its headers are complete, but nghttp2 counts
 * the stream as processed as soon as its HEADERS frame arrives (`session.state.lastProcStreamID`): a session
 * whose last processed stream JS has not seen is inside a header block. A sweep, on the period node uses for
 * HTTP/1.1's header timeout, destroys a session that stayed so for `client_header_timeout` (GOAWAY
 * PROTOCOL_ERROR, then close). A stream nghttp2 refused before JS saw it (too many streams, an oversized
 * header list) looks the same until the client's next stream: a client that goes silent after one is
 * closed after `client_header_timeout` rather than `keepalive_timeout`.
 */
export class Http2Sessions {
  readonly #open = new Map<Http2Session, HeaderBlockWatch>();
  #headerTimeoutMs: number;
  #sweep: NodeJS.Timeout | undefined;

  /** `max_header_size`: a stream whose header list is larger is answered 431 (proxy-server.ts). */
  maxHeaderListSize: number;
  /**
   * `keepalive_requests` for h2 (as nginx applies it since 1.19.7): after this many streams a session gets GOAWAY;
   * the streams it has are served, the client opens its next ones on a new connection. 0: no limit.
   */
  maxStreams: number;

  constructor(headerTimeoutMs: number, maxHeaderListSize: number, maxStreams = 0) {
    this.#headerTimeoutMs = headerTimeoutMs;
    this.maxHeaderListSize = maxHeaderListSize;
    this.maxStreams = maxStreams;
  }

  /** A reload's `client_header_timeout`: for the blocks a sweep finds from now on. */
  set headerTimeout(ms: number) {
    if (ms === this.#headerTimeoutMs) return;
    this.#headerTimeoutMs = ms;
    if (this.#sweep) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
      if (this.#open.size > 0) this.#startSweep();
    }
  }

  add(session: Http2Session): void {
    // Before its first stream: node's Map of a session's streams kept every stream that passed through it alive
    // until a mark-compact (h2-stream-table.ts).
    useStreamTable(session);
    // The socket now: node forgets it when the session is destroyed, and #cut() may still need it then.
    const watch: HeaderBlockWatch = { seen: 0, pending: 0, since: 0, closingSince: 0, socket: sessionSocket(session) };
    this.#open.set(session, watch);
    let streams = 0;
    session.on('stream', (stream: ServerHttp2Stream) => {
      if (stream.id !== undefined && stream.id > watch.seen) watch.seen = stream.id;
      // `>=`: a reload may lower the limit below what a session has already carried.
      if (++streams >= this.maxStreams && this.maxStreams > 0 && !session.closed) session.close();
    });
    session.once('close', () => {
      this.#open.delete(session);
      if (this.#open.size === 0 && this.#sweep) {
        clearInterval(this.#sweep);
        this.#sweep = undefined;
      }
    });
    if (!this.#sweep) this.#startSweep();
  }

  /**
   * `keepalive_timeout` passed with no frame read or written. As nginx: a session with no stream open is closed
   * now (GOAWAY, then the connection). One with a response waiting to go out has had a client that took none of
   * it for that long (nginx's `send_timeout`, 60 s by default, would have closed it first): cut. One whose
   * streams all wait on their upstreams gets GOAWAY, its streams finish under their own timeouts, and the
   * sweep cuts it LINGER_MS after its last one if node has not closed it by then.
   */
  expire(session: Http2Session): void {
    if (openStreams(session) === 0 || outputWaiting(session)) this.#cut(session);
    else if (!session.closed) session.close();
  }

  /** Forced shutdown: cut every session with what it still carries. */
  destroyAll(): void {
    for (const s of this.#open.keys()) this.#cut(s);
  }

  get size(): number {
    return this.#open.size;
  }

  /**
   * Ends `session` and its connection. node ends a session's socket only once the session's last write has
   * completed, and with a peer that reset the connection that can be never: after h2load's clients stopped
   * mid-run (or any client reset its TCP connection with responses in flight; test/http2-protections.test.ts),
   * some sessions (8 of 20 clients in a proxy, 1 of 200 with a bare node:http2 server, node 24.21) never
   * learned that the connection was gone. The session stayed open, its descriptor open with nothing left of
   * the connection in the kernel's table, and the listener counted it: `server.close()` never called back, so
   * a proxy told to stop never exited. `session.close()` left it closed and never destroyed;
   * `session.destroy()` left the socket open. Destroying the socket ends both (the session sees it close).
   */
  #cut(session: Http2Session): void {
    if (!session.destroyed) session.destroy();
    this.#open.get(session)?.socket?.destroy();
  }

  #startSweep(): void {
    // node's period for HTTP/1.1 (connectionsCheckingInterval, proxy-server.ts): a block is cut at most a
    // quarter of the timeout late.
    const period = Math.max(50, Math.min(1000, this.#headerTimeoutMs / 4));
    this.#sweep = setInterval(() => this.#cutUnfinishedBlocks(), period);
    this.#sweep.unref();
  }

  #cutUnfinishedBlocks(): void {
    const now = Date.now();
    for (const [session, watch] of this.#open) {
      if (session.closed || session.destroyed) {
        // Closing, nothing left to serve, and its connection still open: see #cut().
        if (openStreams(session) > 0) watch.closingSince = 0;
        else if (watch.closingSince === 0) watch.closingSince = now;
        else if (now - watch.closingSince >= LINGER_MS) this.#cut(session);
        continue;
      }
      if (session.connecting) continue;
      const last = session.state.lastProcStreamID ?? 0;
      if (last <= watch.seen) {
        watch.pending = 0;
        continue;
      }
      if (watch.pending !== last) {
        watch.pending = last;
        watch.since = now;
      } else if (now - watch.since >= this.#headerTimeoutMs) {
        // With an error, node sends the code given in its last GOAWAY (without one it sends NO_ERROR).
        session.destroy(new Error('client_header_timeout: a header block left unfinished'), constants.NGHTTP2_PROTOCOL_ERROR);
      }
    }
  }
}

/** Per session: the highest stream JS has seen, the header block in progress since when, closing since when. */
interface HeaderBlockWatch {
  seen: number;
  pending: number;
  since: number;
  closingSince: number;
  /** The session's socket, to end it when node does not (Http2Sessions#cut). */
  readonly socket: Duplex | undefined;
}

/**
 * How long a closing session with no stream left may keep its connection open: nginx's `lingering_timeout`
 * (5 s), the time it waits for a closing client's next bytes before it closes the connection.
 */
const LINGER_MS = 5_000;

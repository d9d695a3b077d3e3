import type { OutgoingHttpHeaders } from 'node:http';
import {
  constants,
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  Http2ServerRequest,
  Http2ServerResponse,
  type Http2Session,
  type SecureServerOptions,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import type { TlsOptions } from 'node:tls';
import type { DeepReadonly, ProxyConfig } from '@tiergate/config';
import { ClientRequest } from './client-request.ts';

/**
 * HTTP/2 to clients (nginx `http2 on`): node:http2's compatibility API, so the exchange (exchange.ts) sees an
 * h2 stream through the same request/response surface as an HTTP/1.1 request. What differs is adapted here,
 * in the two classes node builds for each stream:
 *
 * - Http2Request presents the request as an HTTP/1.1 hop would carry it: `:authority` becomes `Host`, the
 *   pseudo-header fields are dropped, and split `cookie` fields are joined (RFC 9113 §8.2.3), since the
 *   upstream speaks HTTP/1.1.
 * - Http2Response drops connection-specific fields, which HTTP/2 forbids (RFC 9113 §8.2.2) and node throws on;
 *   a `Connection: close` the proxy adds while draining or after an error has no meaning on a stream (a
 *   draining session gets GOAWAY instead, proxy-server.ts).
 *
 * The session limits are nghttp2's own, through node's options (docs/proxy.md, HTTP/2): nothing here counts
 * frames by hand.
 */

/** Response fields that are connection-specific in HTTP/2 (node's list: it refuses to send any of them). */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'http2-settings',
]);

/** The `limits` of the proxy section that shape an HTTP/2 session. */
type Limits = DeepReadonly<ProxyConfig>['limits'];

/**
 * An h2 stream's request as an HTTP/1.1 hop carries it (see the module comment). A request with `:authority`
 * and a `Host` that names another authority keeps both, so request-screen.ts refuses it as a repeated Host
 * (400, RFC 9113 §8.3.1: such a request is malformed); one with neither gets an empty `Host`, which
 * request-screen.ts refuses too, as nginx answers 400 to a request without a host.
 */
export class Http2Request extends Http2ServerRequest {
  constructor(
    stream: ServerHttp2Stream,
    headers: Http2ServerRequest['headers'],
    options: ConstructorParameters<typeof Http2ServerRequest>[2],
    rawHeaders: readonly string[],
  ) {
    super(stream, headers, options, http1RawHeaders(rawHeaders));
    const authority = headers[':authority'];
    if (authority !== undefined && headers.host === undefined) headers.host = authority;
    let size = 0;
    for (let i = 0; i < rawHeaders.length; i += 2) size += rawHeaders[i]!.length + rawHeaders[i + 1]!.length + 32;
    this.headerListSize = size;
  }

  /**
   * The header list's size as HPACK counts it (names + values + 32 per field, pseudo-header fields too): what
   * proxy-server.ts holds against `max_header_size` to answer 431 (see http2Settings).
   */
  readonly headerListSize: number;
}

/** The HTTP/1.1 view of an h2 header list (Http2Request). */
export function http1RawHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  let authority: string | undefined;
  let cookie: string | undefined;
  let hostsAgree = true;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 0x3a) {
      if (name === ':authority') authority = value;
      continue;
    }
    // h2 field names are lower case (nghttp2 refuses others as malformed).
    if (name === 'cookie') {
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (name === 'host') hosts++;
    out.push(name, value);
  }
  if (authority !== undefined) {
    for (let i = 0; i < out.length && hostsAgree; i += 2)
      if (out[i] === 'host' && out[i + 1]!.toLowerCase() !== authority.toLowerCase()) hostsAgree = false;
    // An agreeing Host says nothing more than :authority: one Host is kept, the first field, as HTTP/1.1 puts it.
    if (hostsAgree) for (let i = out.length - 2; i >= 0; i -= 2) if (out[i] === 'host') out.splice(i, 2);
    if (hostsAgree || hosts > 0) out.unshift('host', authority);
  } else if (hosts === 0) out.unshift('host', '');
  if (cookie !== undefined) out.push('cookie', cookie);
  return out;
}

/** The response of an h2 stream, without the fields HTTP/2 forbids (see the module comment). */
export class Http2Response extends Http2ServerResponse {
  override writeHead(statusCode: number, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(statusCode: number, statusMessage: string, headers?: OutgoingHttpHeaders | readonly string[]): this;
  override writeHead(
    statusCode: number,
    messageOrHeaders?: string | OutgoingHttpHeaders | readonly string[],
    maybeHeaders?: OutgoingHttpHeaders | readonly string[],
  ): this {
    // HTTP/2 has no reason phrase (RFC 9113 §8.3.2): node would only warn about it.
    const headers = typeof messageOrHeaders === 'string' ? maybeHeaders : messageOrHeaders;
    return super.writeHead(statusCode, withoutConnectionFields(headers));
  }
}

function withoutConnectionFields(
  headers: OutgoingHttpHeaders | readonly string[] | undefined,
): OutgoingHttpHeaders | readonly string[] | undefined {
  if (headers === undefined) return undefined;
  if (isFlatList(headers)) {
    let clean = true;
    for (let i = 0; i < headers.length && clean; i += 2) if (CONNECTION_SPECIFIC.has(String(headers[i]).toLowerCase())) clean = false;
    if (clean) return headers;
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2)
      if (!CONNECTION_SPECIFIC.has(String(headers[i]).toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
    return out;
  }
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) out[name] = value;
  return out;
}

function isFlatList(h: OutgoingHttpHeaders | readonly string[]): h is readonly string[] {
  return Array.isArray(h);
}

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
 * A listener's HTTP/2 server: with `tls`, ALPN `h2` and `http/1.1` on one port (HTTP/1.1 connections go to
 * node's HTTP/1.1 server code with ClientRequest, as on a plain HTTPS listener); without, cleartext h2c with
 * prior knowledge only. `onSession` sees every h2 session (drain and idle timeout, proxy-server.ts).
 */
export function createHttp2Listener(tls: TlsOptions | undefined, limits: Limits): Http2SecureServer | Http2Server {
  const options: SecureServerOptions = {
    settings: http2Settings(limits),
    Http1IncomingMessage: ClientRequest,
    Http2ServerRequest: Http2Request,
    Http2ServerResponse: Http2Response as typeof Http2ServerResponse,
    // Rapid reset (CVE-2023-44487): nghttp2's token bucket of client RST_STREAMs, then GOAWAY.
    streamResetBurst: limits.http2_reset_burst,
    streamResetRate: limits.http2_reset_rate,
    // node:http(s) servers disable Nagle on their sockets, node:http2's do not: a response written in several
    // chunks (a proxied body) then waited for the client's delayed ACK, 40 ms a time (HTTPS/1.1 at 64 KiB:
    // 34 req/s instead of ~600 in loadtest/tls-bench.ts).
    noDelay: true,
  };
  return tls ? createSecureServer({ ...options, ...tls, allowHTTP1: true }) : createServer(options);
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

  constructor(headerTimeoutMs: number, maxHeaderListSize: number) {
    this.#headerTimeoutMs = headerTimeoutMs;
    this.maxHeaderListSize = maxHeaderListSize;
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
    const watch: HeaderBlockWatch = { seen: 0, pending: 0, since: 0 };
    this.#open.set(session, watch);
    session.on('stream', (stream: ServerHttp2Stream) => {
      if (stream.id !== undefined && stream.id > watch.seen) watch.seen = stream.id;
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

  /** Forced shutdown: cut every session with what it still carries. */
  destroyAll(): void {
    for (const s of this.#open.keys()) s.destroy();
  }

  get size(): number {
    return this.#open.size;
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
      if (session.destroyed || session.connecting) continue;
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

/** Per session: the highest stream JS has seen, and the header block in progress since when. */
interface HeaderBlockWatch {
  seen: number;
  pending: number;
  since: number;
}

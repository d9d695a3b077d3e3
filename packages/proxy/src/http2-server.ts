import type { OutgoingHttpHeaders } from 'node:http';
import {
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
  }
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

/** The SETTINGS an h2 session advertises, from `limits` (a reload applies them to sessions opened after it). */
export function http2Settings(limits: Limits): Settings {
  return {
    maxConcurrentStreams: limits.http2_max_concurrent_streams,
    // The header block as HPACK counts it (names + values + 32 per field): the h2 twin of max_header_size.
    maxHeaderListSize: limits.max_header_size,
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
  };
  return tls ? createSecureServer({ ...options, ...tls, allowHTTP1: true }) : createServer(options);
}

/** The h2 sessions of one listener, for drain (GOAWAY) and forced shutdown. */
export class Http2Sessions {
  readonly #open = new Set<Http2Session>();

  add(session: Http2Session): void {
    this.#open.add(session);
    session.once('close', () => this.#open.delete(session));
  }

  /** Forced shutdown: cut every session with what it still carries. */
  destroyAll(): void {
    for (const s of this.#open) s.destroy();
  }

  get size(): number {
    return this.#open.size;
  }
}

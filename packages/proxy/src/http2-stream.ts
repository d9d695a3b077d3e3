import type { OutgoingHttpHeaders } from 'node:http';
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { acceptsTrailers } from './upstream-h2.ts';

/**
 * An h2 stream served through node:http2's core API (`'stream'`, `respond`, `write`, `end`) behind the narrow
 * request/response surface the exchange (exchange.ts) uses of node:http's IncomingMessage and ServerResponse.
 *
 * node's compatibility API (Http2ServerRequest/Http2ServerResponse) did the same with two stream objects per
 * h2 stream, eleven listeners on it, a header object copied and validated field by field, and an empty
 * trailers round (`waitForTrailers`, then an empty DATA frame) on every response. Measured with
 * loadtest/tls-bench.ts (README, "HTTP/2 through node:http2's core API"), that layer cost 8–10 µs of its own per
 * 100 B request, added to node:http2's per-stream work and the GC, and h2 promoted 1.5–2.4 times as much per
 * request to the old generation with it (its objects, alive at each scavenge). Here a request without a body
 * is one plain object; one with a body is a Readable (undici reads it as the request body); the response passes
 * the exchange's flat header list to `respond` as it is.
 *
 * What the compatibility API did that the exchange relies on is kept, tested over real h2 (test/http2.test.ts,
 * test/http2-stream.test.ts): `:authority` as Host, pseudo-header fields dropped and split cookies joined
 * (http1RawHeaders); connection-specific response fields dropped (RFC 9113 §8.2.2); no body for HEAD, 204 and
 * 304 (node ends those streams in `respond`); 100-continue and 103 early hints as additional HEADERS; trailers
 * only to a client that sent `TE: trailers`; a stream's errors kept from the process (node would throw them).
 * Three things it did wrong are not kept: a client's RST_STREAM mid-response now aborts the upstream request
 * (writableFinished), a response cut mid-body resets the stream with INTERNAL_ERROR rather than NO_ERROR
 * (destroy), and CONNECT is answered 405 (serveHttp2Stream).
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
/** Their lengths: a name of another length is not lower-cased to be looked up (most are not). */
const CONNECTION_SPECIFIC_LENGTHS = new Set([...CONNECTION_SPECIFIC].map((n) => n.length));

function isConnectionSpecific(name: string): boolean {
  return CONNECTION_SPECIFIC_LENGTHS.has(name.length) && CONNECTION_SPECIFIC.has(name.toLowerCase());
}

/**
 * node's own test of one Link value of an early hint (lib/internal/validators.js `linkValueRegExp`, Node 24.21),
 * which its compatibility response applied in writeEarlyHints; a parity test holds it to node:http's.
 */
const LINK_VALUE = /^(?:<[^>\r\n]*>)(?:\s*;\s*[^;"\s]+(?:=(")?[^;"\s]*\1)?)*$/;

/** Whether node's writeEarlyHints takes `value` as one Link value (LINK_VALUE). */
export function isLinkValue(value: string): boolean {
  return LINK_VALUE.test(value);
}

/** `respond` options, read and never kept by node: shared. */
const RESPOND_END = Object.freeze({ endStream: true });
const RESPOND_TRAILERS = Object.freeze({ waitForTrailers: true });
const RESPOND_BODY = Object.freeze({});

const kResponse = Symbol('tiergate.h2response');
const kBody = Symbol('tiergate.h2body');
type Tagged = ServerHttp2Stream & { [kResponse]?: Http2StreamResponse; [kBody]?: Http2StreamBody };

function noop(): void {}

/** The request facts both request shapes carry (see the module comment). */
interface RequestFacts {
  readonly stream: ServerHttp2Stream;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly method: string;
  readonly url: string;
  readonly headerListSize: number;
}

/**
 * The request facts of an h2 stream as an HTTP/1.1 hop carries them (http1RawHeaders). A request with
 * `:authority` and a `Host` that names another authority keeps both, so request-screen.ts refuses it as a
 * repeated Host (400, RFC 9113 §8.3.1); one with neither gets an empty `Host`, refused too (nginx: 400).
 * `headerListSize` is the list's size as HPACK counts it (names + values + 32 per field, pseudo-header fields
 * too): what proxy-server.ts holds against `max_header_size` to answer 431 (http2-server.ts http2Settings).
 */
function requestFacts(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: readonly string[]): RequestFacts {
  const authority = headers[':authority'];
  if (authority !== undefined && headers.host === undefined) headers.host = authority;
  let size = 0;
  for (let i = 0; i < raw.length; i += 2) size += raw[i]!.length + raw[i + 1]!.length + 32;
  return {
    stream,
    headers,
    rawHeaders: http1RawHeaders(raw),
    method: headers[':method'] as string,
    url: headers[':path'] as string,
    headerListSize: size,
  };
}

/** An h2 request without a body (its HEADERS ended the stream): what the exchange reads of node's IncomingMessage. */
export class Http2StreamRequest implements RequestFacts {
  readonly stream: ServerHttp2Stream;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly method: string;
  readonly url: string;
  readonly headerListSize: number;
  readonly httpVersion = '2.0';
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  readonly complete = true;
  readonly destroyed = false;
  readonly readableDidRead = false;

  constructor(facts: RequestFacts) {
    this.stream = facts.stream;
    this.headers = facts.headers;
    this.rawHeaders = facts.rawHeaders;
    this.method = facts.method;
    this.url = facts.url;
    this.headerListSize = facts.headerListSize;
  }

  /** The connection (node's proxy of the session's socket: remoteAddress, TLS peer certificate). */
  get socket(): Socket {
    return this.stream.session!.socket as Socket;
  }

  isPaused(): boolean {
    return false;
  }
}

/**
 * An h2 request with a body: a Readable of the stream's DATA, which undici sends upstream. Destroying it (undici
 * does once it stops sending, also after a complete exchange) leaves the h2 stream alone, so the response goes
 * on; whatever the client still sends is then read and dropped. A stream that closes before the client's
 * END_STREAM destroys it with an error, so the upstream never takes a cut body for a whole one.
 */
export class Http2StreamBody extends Readable implements RequestFacts {
  readonly stream: ServerHttp2Stream;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly method: string;
  readonly url: string;
  readonly headerListSize: number;
  readonly httpVersion = '2.0';
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  /** The client's END_STREAM arrived: the body is whole (IncomingMessage#complete). */
  complete = false;
  #reading = false;

  constructor(facts: RequestFacts) {
    super({ autoDestroy: false });
    this.stream = facts.stream;
    this.headers = facts.headers;
    this.rawHeaders = facts.rawHeaders;
    this.method = facts.method;
    this.url = facts.url;
    this.headerListSize = facts.headerListSize;
    (facts.stream as Tagged)[kBody] = this;
    facts.stream.on('end', onStreamEnd);
  }

  get socket(): Socket {
    return this.stream.session!.socket as Socket;
  }

  override _read(): void {
    if (this.#reading) this.stream.resume();
    else {
      this.#reading = true;
      this.stream.on('data', onStreamData);
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const stream = this.stream as Tagged;
    stream.removeListener('data', onStreamData);
    stream[kBody] = undefined;
    // Read and drop the rest: a paused stream would hold the client's flow-control window.
    if (!stream.destroyed) stream.resume();
    callback(err);
  }

  /** The stream closed: a body without its END_STREAM is cut (an error for its reader, if it has one yet). */
  streamClosed(): void {
    if (this.complete || this.destroyed) return;
    if (this.listenerCount('error') === 0) this.destroy();
    else this.destroy(new Error('the client reset the h2 stream before its request body ended'));
  }
}

function onStreamData(this: Tagged, chunk: Buffer): void {
  const body = this[kBody];
  if (body !== undefined && !body.push(chunk)) this.pause();
}

function onStreamEnd(this: Tagged): void {
  const body = this[kBody];
  if (body === undefined) return;
  body.complete = true;
  body.push(null);
}

/** Either request shape, as the exchange sees it. */
export type Http2StreamRequestLike = Http2StreamRequest | Http2StreamBody;

/**
 * The response of an h2 stream: the part of node's ServerResponse the exchange, error-response.ts and
 * proxy-server.ts use. `writeHead` with a flat list goes to `respond` as one list (node lower-cases and checks
 * the names there), without the connection-specific fields; a head set with `statusCode` and `appendHeader`
 * (upstream-h2.ts deferHead) goes out with the first body chunk or the end.
 */
export class Http2StreamResponse {
  readonly stream: ServerHttp2Stream;
  statusCode = 200;
  /** The client sent `TE: trailers`: the response waits for its trailers (see end()). */
  readonly #trailersOk: boolean;
  #deferred: (string | number)[] | undefined;
  #trailers: OutgoingHttpHeaders | undefined;
  #ended = false;
  #onClose: ((this: Http2StreamResponse) => void) | undefined;
  #onDrain: ((this: Http2StreamResponse) => void) | undefined;

  constructor(stream: ServerHttp2Stream, trailersOk: boolean) {
    this.stream = stream;
    this.#trailersOk = trailersOk;
    (stream as Tagged)[kResponse] = this;
    // Without a listener, an error node emits on the stream (a reset, a write after the session went) would
    // be thrown: the response's 'close' is what tells the exchange.
    stream.on('error', noop);
    stream.on('close', onStreamClose);
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  /**
   * The response was ended (end()): its 'close' is then no sign of a client gone. Not the stream's own
   * writableFinished, which node also sets on a stream the client reset (node's compatibility API read that:
   * a client's RST_STREAM mid-response left the upstream request running to its end).
   */
  get writableFinished(): boolean {
    return this.#ended;
  }

  /** Non-null, as for an HTTP/1.1 response that owns its connection (exchange.ts asks while draining). */
  get socket(): Socket | null {
    return (this.stream.session?.socket as Socket | undefined) ?? null;
  }

  /** Meaningless on a stream (draining sends GOAWAY, proxy-server.ts); accepted so proxy-server.ts can set it. */
  set shouldKeepAlive(_v: boolean) {}

  /** The two events the exchange listens to: `close` (the stream closed) and `drain` (it may write again). */
  on(event: string, fn: (this: Http2StreamResponse) => void): this {
    if (event === 'close') this.#onClose = fn;
    else if (event === 'drain') {
      if (this.#onDrain === undefined) this.stream.on('drain', onStreamDrain);
      this.#onDrain = fn;
    } else throw new Error(`Http2StreamResponse: no '${event}' event`);
    return this;
  }

  removeListener(event: string, fn: (this: Http2StreamResponse) => void): this {
    if (event === 'close' && this.#onClose === fn) this.#onClose = undefined;
    else if (event === 'drain' && this.#onDrain === fn) this.#onDrain = undefined;
    return this;
  }

  /** @internal stream 'close' */
  closed(): void {
    this.#onClose?.call(this);
  }

  /** @internal stream 'drain' */
  drained(): void {
    this.#onDrain?.call(this);
  }

  /** HTTP/2 has no reason phrase (RFC 9113 §8.3.2): a `statusMessage` argument is ignored. */
  writeHead(status: number, a?: string | OutgoingHttpHeaders | readonly string[], b?: OutgoingHttpHeaders | readonly string[]): this {
    const headers = typeof a === 'string' ? b : a;
    this.statusCode = status;
    const list: (string | number)[] = [':status', status];
    if (headers !== undefined) appendFields(list, headers);
    this.#respond(list);
    return this;
  }

  /** Adds to a head not yet sent (upstream-h2.ts deferHead). */
  appendHeader(name: string, value: string): this {
    if (isConnectionSpecific(name)) return this;
    this.#deferred ??= [];
    this.#deferred.push(name, value);
    return this;
  }

  writeContinue(): void {
    this.#informational({ ':status': constants.HTTP_STATUS_CONTINUE });
  }

  /** A 103 (RFC 8297) with the `link` values; one node's writeEarlyHints would refuse throws, as there. */
  writeEarlyHints(hints: { link: string[] }): void {
    for (const link of hints.link)
      if (!isLinkValue(link)) throw new TypeError(`an early hint's Link value is malformed: ${JSON.stringify(link)}`);
    if (hints.link.length === 0) return;
    this.#informational({ ':status': 103, link: hints.link.join(', ') });
  }

  /** Trailers for the end: sent only to a client that asked for them (`TE: trailers`), as the exchange does. */
  addTrailers(trailers: OutgoingHttpHeaders): void {
    this.#trailers = trailers;
  }

  write(chunk: Buffer | string): boolean {
    const stream = this.stream;
    if (!stream.headersSent) this.#respondDeferred(false);
    // Nothing of a body goes out after HEAD, 204, 304 (node ended the stream in respond) or once it closed.
    if (stream.writableEnded || stream.destroyed || stream.closed) return true;
    return stream.write(chunk);
  }

  end(chunk?: Buffer | string): this {
    if (this.#ended) return this;
    this.#ended = true;
    const stream = this.stream;
    if (!stream.headersSent) this.#respondDeferred(chunk === undefined || chunk.length === 0);
    if (stream.writableEnded || stream.destroyed || stream.closed) return this;
    if (chunk !== undefined && chunk.length > 0) stream.end(chunk);
    else stream.end();
    return this;
  }

  /**
   * Cuts the stream with RST_STREAM(INTERNAL_ERROR), as nginx does when its upstream fails mid-body, so the
   * client cannot take a truncated response for a complete one. node's `destroy()` without an error (what
   * the compatibility API's did) resets with NO_ERROR, which clients read as a clean end.
   */
  destroy(): void {
    const stream = this.stream;
    if (stream.destroyed) return;
    if (stream.closed) stream.destroy();
    else stream.close(constants.NGHTTP2_INTERNAL_ERROR);
  }

  #respondDeferred(ending: boolean): void {
    const list: (string | number)[] = [':status', this.statusCode];
    if (this.#deferred !== undefined) for (const f of this.#deferred) list.push(f);
    this.#respond(list, ending && this.#trailers === undefined);
  }

  #respond(list: (string | number)[], endStream = false): void {
    const stream = this.stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    const status = this.statusCode;
    const noBody =
      endStream || (stream as { headRequest?: boolean }).headRequest === true || status === 204 || status === 205 || status === 304;
    if (!noBody && this.#trailersOk) {
      stream.once('wantTrailers', onWantTrailers);
      stream.respond(list as never, RESPOND_TRAILERS);
    } else stream.respond(list as never, noBody ? RESPOND_END : RESPOND_BODY);
    releaseSentList(stream);
  }

  #informational(headers: OutgoingHttpHeaders): void {
    const stream = this.stream;
    if (stream.headersSent || stream.destroyed || stream.closed) return;
    stream.additionalHeaders(headers);
  }

  /** @internal stream 'wantTrailers': the upstream's trailers, or none (node then ends with an empty DATA frame). */
  sendTrailers(): void {
    try {
      this.stream.sendTrailers(this.#trailers ?? {});
    } catch {
      // A trailer node refuses (a connection-specific or pseudo-header field) cuts the stream, not the process.
      this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
  }
}

/**
 * The key under which node keeps the list given to `respond` on the stream (`raw-headers` in
 * lib/internal/http2/core.js; read only by the `sentHeaders` getter). Found on the first stream that answered;
 * null when node has no such key (then nothing is released).
 */
let sentListKey: symbol | null | undefined;
/** What the released list becomes: `sentHeaders` is then `{}` (still truthy once headers went out, as node's code reads it). */
const RELEASED: readonly string[] = Object.freeze([]);

/**
 * Lets go of the response's header list node keeps on the stream. A stream that reaches the old generation
 * takes everything it holds with it, to be freed only by a mark-compact: every h2 stream did, through node's
 * per-session Map and V8's pretenuring (both undone now: h2-stream-table.ts, v8-flags.ts), and a long-lived one
 * (a large download, a gRPC stream) still does. The list and its strings were half of what h2 promoted per
 * request then: 1 447 against 759 bytes without them (loadtest/README.md, "What h2 leaves to the old
 * generation"). Nothing here reads `sentHeaders`.
 */
export function releaseSentList(stream: ServerHttp2Stream): void {
  if (sentListKey === undefined) sentListKey = Object.getOwnPropertySymbols(stream).find((k) => k.description === 'raw-headers') ?? null;
  if (sentListKey !== null) (stream as unknown as Record<symbol, unknown>)[sentListKey] = RELEASED;
}

function onStreamClose(this: Tagged): void {
  const res = this[kResponse];
  // The response first: it tells the exchange the client went (and the upstream is aborted) before the body
  // errors, so the attempt ends as "client gone" whichever undici reports first.
  if (res !== undefined) {
    this[kResponse] = undefined;
    res.closed();
  }
  this[kBody]?.streamClosed();
}

function onStreamDrain(this: Tagged): void {
  this[kResponse]?.drained();
}

function onWantTrailers(this: Tagged): void {
  this[kResponse]?.sendTrailers();
}

/** Appends a header list (flat or an object) without its connection-specific fields. */
function appendFields(list: (string | number)[], headers: OutgoingHttpHeaders | readonly string[]): void {
  if (Array.isArray(headers)) {
    const flat = headers as readonly string[];
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i]!;
      if (!isConnectionSpecific(name)) list.push(name, flat[i + 1]!);
    }
    return;
  }
  for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
    if (value === undefined || isConnectionSpecific(name)) continue;
    if (Array.isArray(value)) for (const v of value) list.push(name, v);
    else list.push(name, value);
  }
}

/**
 * Serves one h2 stream: what node's compatibility API answered itself is answered here the same way
 * (CONNECT: 405, as nothing tunnels over h2; an `Expect` other than `100-continue`: 417), then `serve` gets
 * the request and response facades.
 */
export function serveHttp2Stream(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
  serve: (req: Http2StreamRequestLike, res: Http2StreamResponse) => void,
): void {
  const method = headers[':method'];
  const expect = headers.expect;
  if (method === 'CONNECT' || (expect !== undefined && expect !== '100-continue')) {
    stream.on('error', noop);
    const status = method === 'CONNECT' ? constants.HTTP_STATUS_METHOD_NOT_ALLOWED : constants.HTTP_STATUS_EXPECTATION_FAILED;
    if (!stream.destroyed && !stream.closed) stream.respond({ ':status': status }, RESPOND_END);
    return;
  }
  const facts = requestFacts(stream, headers, rawHeaders);
  const req = stream.endAfterHeaders ? new Http2StreamRequest(facts) : new Http2StreamBody(facts);
  const res = new Http2StreamResponse(stream, acceptsTrailers(req));
  serve(req, res);
}

/** The HTTP/1.1 view of an h2 header list (see requestFacts). */
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

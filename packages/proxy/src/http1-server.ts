import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { Server as NetServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { http } from './node-http.ts';
import { SlotList } from './slot-list.ts';

/**
 * An HTTP/1.1 server on net.Socket and llhttp (undici's WASM build, request mode) behind the request/response
 * surface the exchange (exchange.ts) uses of node:http's IncomingMessage and ServerResponse, as http2-stream.ts
 * does for HTTP/2 streams. node:http's server side costs 20–22 µs per 100 B request on this machine where this
 * one costs 13–14 (loadtest/README.md, "What a lean server side would give").
 *
 * What node:http does that this keeps: llhttp with every lenient flag off (node's default without
 * --insecure-http-parser); 431 past `maxHeaderSize` bytes of request line and header fields (node counts the
 * same bytes); 400 for an HTTP/1.1 request without Host; `Expect: 100-continue` as 'checkContinue', any other
 * expectation 417; keep-alive, pipelined requests answered in order (a response waits, `socket === null`, until
 * those before it are sent); HEAD, 1xx, 204 and 304 without a body; chunked responses to HTTP/1.1 when the
 * length is unknown, a close after an unframed answer to HTTP/1.0; `Connection: close` either way; the headers,
 * request and keep-alive timeouts checked by one sweep per `connectionsCheckingInterval` (408 through
 * 'clientError' as node); Upgrade through `shouldUpgradeCallback` and 'upgrade'; CONNECT closed (node does
 * without a 'connect' listener); early hints; trailers on chunked responses; closeIdleConnections and
 * closeAllConnections. Parse errors reach 'clientError' with node's `HPE_*` codes.
 */

const require = createRequire(import.meta.url);
// Deep paths of the undici the proxy already runs (no `exports` map): its llhttp build and constants.
const { TYPE, ERROR, METHODS } = require('undici/lib/llhttp/constants.js') as {
  TYPE: { REQUEST: number };
  ERROR: Record<string, number>;
  METHODS: Record<string, number>;
};
const ERROR_NAMES: string[] = [];
for (const [name, n] of Object.entries(ERROR)) ERROR_NAMES[n] = name;
const METHOD_NAMES: string[] = [];
for (const [name, n] of Object.entries(METHODS)) METHOD_NAMES[n] = name;
const E_OK = ERROR.OK!;
const E_USER = ERROR.USER!;
const E_PAUSED = ERROR.PAUSED!;
const E_PAUSED_UPGRADE = ERROR.PAUSED_UPGRADE!;
const E_PAUSED_H2 = ERROR.PAUSED_H2_UPGRADE!;
const METHOD_CONNECT = METHODS.CONNECT!;
const METHOD_HEAD = METHODS.HEAD!;
/**
 * Pipelined requests read ahead of their answers before the connection stops reading (node stops once the answers
 * waiting exceed the socket's high-water mark): a client that pipelines without reading cannot make the proxy
 * hold an unbounded queue of requests and answers.
 */
const MAX_PIPELINED = 32;
/** node answers 431 past 1000 header fields (its maxHeadersCount of 2000 counts names and values). */
const MAX_HEADERS = 1000;

/** The WebAssembly global (Node's types leave it to lib.dom), as much of it as this file uses. */
const Wasm = (
  globalThis as unknown as {
    WebAssembly: {
      Module: new (bytes: Uint8Array) => object;
      Instance: new (module: object, imports: object) => { exports: unknown };
    };
  }
).WebAssembly;
type Latin1 = Buffer & { latin1Slice(start?: number, end?: number): string };

interface Llhttp {
  memory: { buffer: ArrayBuffer };
  malloc(n: number): number;
  free(p: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(p: number): void;
  llhttp_execute(p: number, data: number, len: number): number;
  llhttp_resume_after_upgrade(p: number): void;
  llhttp_get_method(p: number): number;
  llhttp_get_http_major(p: number): number;
  llhttp_get_http_minor(p: number): number;
  llhttp_should_keep_alive(p: number): number;
  llhttp_get_upgrade(p: number): number;
  llhttp_get_error_pos(p: number): number;
  llhttp_get_error_reason(p: number): number;
}

/** The connection llhttp is executing for (its callbacks only carry the parser's pointer). */
let current: Connection | null = null;
let ll: Llhttp | undefined;
let mem: Buffer = Buffer.alloc(0);
let bufPtr = 0;
let bufSize = 0;

function llhttp(): Llhttp {
  if (ll) return ll;
  const mod = new Wasm.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as Uint8Array);
  ll = new Wasm.Instance(mod, {
    env: {
      wasm_on_message_begin: () => current!.onMessageBegin(),
      wasm_on_url: (_p: number, at: number, len: number) => current!.onUrl(at, len),
      wasm_on_status: () => 0,
      wasm_on_header_field: (_p: number, at: number, len: number) => current!.onHeaderField(at, len),
      wasm_on_header_value: (_p: number, at: number, len: number) => current!.onHeaderValue(at, len),
      wasm_on_headers_complete: () => current!.onHeadersComplete(),
      wasm_on_body: (_p: number, at: number, len: number) => current!.onBody(at, len),
      wasm_on_message_complete: () => current!.onMessageComplete(),
    },
  }).exports as Llhttp;
  return ll;
}

function view(): Buffer {
  if (mem.buffer !== ll!.memory.buffer) mem = Buffer.from(ll!.memory.buffer);
  return mem;
}

/** A parse error as node reports it to 'clientError': `code` HPE_*, `reason`, `bytesParsed`, `rawPacket`. */
export class Http1ParseError extends Error {
  readonly code: string;
  readonly bytesParsed: number;
  readonly rawPacket: Buffer;
  constructor(code: string, reason: string, bytesParsed: number, rawPacket: Buffer) {
    super(`Parse Error: ${reason}`);
    this.code = code;
    this.bytesParsed = bytesParsed;
    this.rawPacket = rawPacket;
  }
}

/** node's request timeout error (its `code`, for the proxy's 408). */
class RequestTimeoutError extends Error {
  readonly code = 'ERR_HTTP_REQUEST_TIMEOUT';
}

/**
 * Request fields node keeps only the first of (IncomingMessage `matchKnownFields`, joinDuplicateHeaders off);
 * `set-cookie` becomes an array, `cookie` is joined with `; `, every other one with `, `.
 */
const FIRST_ONLY = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'referer',
  'host',
  'authorization',
  'proxy-authorization',
  'if-modified-since',
  'if-unmodified-since',
  'from',
  'location',
  'max-forwards',
  'retry-after',
  'etag',
  'last-modified',
  'server',
  'age',
  'expires',
]);

function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const h: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const had = h[name];
    if (had === undefined) h[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'set-cookie') (had as string[]).push(value);
    else if (FIRST_ONLY.has(name)) continue;
    else h[name] = `${had as string}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return h as IncomingHttpHeaders;
}

/** What both request shapes carry. */
interface RequestHead {
  readonly socket: Socket;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly headers: IncomingHttpHeaders;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
}

/** A request without a body: a plain object with what the exchange reads of IncomingMessage. */
export class Http1Request implements RequestHead {
  readonly socket: Socket;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly headers: IncomingHttpHeaders;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly httpVersion: string;
  readonly complete = true;
  readonly destroyed = false;
  readonly readableDidRead = false;
  upgrade = false;
  constructor(head: RequestHead) {
    this.socket = head.socket;
    this.method = head.method;
    this.url = head.url;
    this.rawHeaders = head.rawHeaders;
    this.headers = head.headers;
    this.httpVersionMajor = head.httpVersionMajor;
    this.httpVersionMinor = head.httpVersionMinor;
    this.httpVersion = `${head.httpVersionMajor}.${head.httpVersionMinor}`;
  }
  isPaused(): boolean {
    return false;
  }
  on(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  destroy(): this {
    return this;
  }
}

/**
 * A request with a body: a Readable of its bytes (undici reads it as the upstream request's body), with the
 * socket paused while it is full. Destroying it once the parser has read the whole body leaves the connection
 * (client-request.ts: undici destroys it after a complete exchange); before that, it closes the connection.
 */
export class Http1BodyRequest extends Readable implements RequestHead {
  readonly socket: Socket;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly headers: IncomingHttpHeaders;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly httpVersion: string;
  complete = false;
  upgrade = false;
  readonly #conn: Connection;
  constructor(head: RequestHead, conn: Connection) {
    super();
    this.socket = head.socket;
    this.method = head.method;
    this.url = head.url;
    this.rawHeaders = head.rawHeaders;
    this.headers = head.headers;
    this.httpVersionMajor = head.httpVersionMajor;
    this.httpVersionMinor = head.httpVersionMinor;
    this.httpVersion = `${head.httpVersionMajor}.${head.httpVersionMinor}`;
    this.#conn = conn;
  }
  override _read(): void {
    this.#conn.resumeBody();
  }
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Destroyed once whole (undici does after a complete exchange): the connection stays (client-request.ts).
    if (!this.complete || err !== null) this.#conn.socket.destroy();
    // As node's IncomingMessage: an error is emitted only to a listener (none: the request is just gone).
    process.nextTick(() => callback(this.listenerCount('error') > 0 ? err : null));
  }
}

export type Http1AnyRequest = Http1Request | Http1BodyRequest;

/** Cached `Date` value, refreshed at most once a second (node's utcDate does the same). */
let dateValue = '';
let dateAt = 0;
function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000 || dateValue === '') {
    dateAt = now - (now % 1000);
    dateValue = new Date(now).toUTCString();
  }
  return dateValue;
}

function invalidHeaderChar(s: string): boolean {
  // node's checkInvalidHeaderChar: only HTAB, SP-~ and obs-text.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return true;
  }
  return false;
}

/**
 * A response: what the exchange calls of ServerResponse (writeHead with a flat list or an object, write, end,
 * writeContinue, writeEarlyHints, addTrailers, destroy) and reads (headersSent, statusCode, socket,
 * writableFinished, destroyed; 'close' and 'drain'). Bytes go to the socket once the responses before it on
 * the connection are done; until then they wait in order.
 */
export class Http1Response extends EventEmitter {
  readonly req: Http1AnyRequest;
  readonly #conn: Connection;
  statusCode = 200;
  statusMessage = '';
  headersSent = false;
  shouldKeepAlive: boolean;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  /** The socket while this response is the one being written, null while it waits behind another. */
  socket: Socket | null = null;
  #held: (string | Buffer)[] | null = null;
  #chunked = false;
  #bodyless: boolean;
  #trailers = '';
  #closed = false;
  /** This response corked the socket (writeHead): end() uncorks at once, as node's end does. */
  #corked = false;
  constructor(conn: Connection, req: Http1AnyRequest, keepAlive: boolean, head: boolean) {
    super();
    this.#conn = conn;
    this.req = req;
    this.shouldKeepAlive = keepAlive;
    this.#bodyless = head;
  }

  /** Sends `data` now if this response owns the socket, else keeps it for when it does. */
  #out(data: string | Buffer): boolean {
    if (this.socket === null) {
      this.#held ??= [];
      this.#held.push(data);
      return false;
    }
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  /** Becomes the response being written: what it held goes out. */
  attach(socket: Socket): void {
    this.socket = socket;
    const held = this.#held;
    this.#held = null;
    if (held) {
      socket.cork();
      for (const d of held) this.#out(d);
      process.nextTick(uncork, socket);
    }
    if (this.writableEnded) this.#finished();
    else this.emit('drain');
  }

  writeContinue(): void {
    this.#out('HTTP/1.1 100 Continue\r\n\r\n');
  }

  writeEarlyHints(hints: Record<string, string | string[]>): void {
    let head = 'HTTP/1.1 103 Early Hints\r\n';
    for (const [name, value] of Object.entries(hints)) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (invalidHeaderChar(v)) throw new TypeError(`invalid character in early hint ${name}`);
        head += `${name}: ${v}\r\n`;
      }
    }
    this.#out(`${head}\r\n`);
  }

  writeHead(
    status: number,
    a?: string | readonly string[] | Record<string, unknown>,
    b?: readonly string[] | Record<string, unknown>,
  ): this {
    if (this.headersSent)
      throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    const statusText = typeof a === 'string' ? a : (http.STATUS_CODES[status] ?? 'unknown');
    const headers = typeof a === 'string' ? b : a;
    this.statusCode = status;
    this.statusMessage = statusText;
    let head = `HTTP/1.1 ${status} ${statusText}\r\n`;
    let length = false;
    let te = false;
    let date = false;
    const add = (name: string, value: string) => {
      if (invalidHeaderChar(name) || invalidHeaderChar(value)) throw new TypeError(`invalid character in header ${name}`);
      const n = name.length;
      if (n === 4 || n === 10 || n === 14 || n === 17) {
        const lower = name.toLowerCase();
        if (lower === 'content-length') length = true;
        else if (lower === 'transfer-encoding') te = true;
        else if (lower === 'date') date = true;
        else if (lower === 'connection') {
          if (/(?:^|,)\s*close\s*(?:,|$)/i.test(value)) this.shouldKeepAlive = false;
          return;
        } else if (lower === 'keep-alive') return;
      }
      head += `${name}: ${value}\r\n`;
    };
    if (Array.isArray(headers)) for (let i = 0; i < headers.length; i += 2) add(String(headers[i]), String(headers[i + 1]));
    else if (headers)
      for (const [name, value] of Object.entries(headers)) {
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const v of value) add(name, String(v));
        else add(name, String(value));
      }
    if (!date) head += `Date: ${httpDate()}\r\n`;
    const conn = this.#conn;
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) this.#bodyless = true;
    if (!this.#bodyless && !length && !te) {
      if (this.req.httpVersionMinor === 0 || this.req.httpVersionMajor === 0) this.shouldKeepAlive = false;
      else {
        this.#chunked = true;
        head += 'Transfer-Encoding: chunked\r\n';
      }
    } else if (te) this.#chunked = !this.#bodyless;
    if (!this.shouldKeepAlive) {
      this.shouldKeepAlive = false;
      head += 'Connection: close\r\n\r\n';
    } else {
      head += `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(conn.server.keepAliveTimeout / 1000)}\r\n\r\n`;
    }
    this.headersSent = true;
    if (this.socket) {
      this.socket.cork();
      this.#corked = true;
      process.nextTick(uncorkResponse, this);
    }
    this.#out(head);
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (this.#bodyless || chunk.length === 0) return true;
    if (this.#chunked) {
      const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      this.#out(`${len.toString(16)}\r\n`);
      this.#out(chunk);
      return this.#out('\r\n');
    }
    return this.#out(chunk);
  }

  addTrailers(trailers: Record<string, string> | readonly [string, string][]): void {
    const list = Array.isArray(trailers) ? trailers : Object.entries(trailers);
    for (const [name, value] of list) {
      if (invalidHeaderChar(name) || invalidHeaderChar(value)) throw new TypeError(`invalid character in trailer ${name}`);
      this.#trailers += `${name}: ${value}\r\n`;
    }
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded) return this;
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    else if (!this.headersSent) this.writeHead(this.statusCode);
    if (this.#chunked) this.#out(`0\r\n${this.#trailers}\r\n`);
    this.writableEnded = true;
    this.uncork();
    if (this.socket) this.#finished();
    return this;
  }

  uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.socket?.uncork();
  }

  /** All of it is handed to the socket: 'finish' once the kernel has it, then 'close', then the next response. */
  #finished(): void {
    const socket = this.socket!;
    const done = () => {
      if (this.destroyed) return;
      this.writableFinished = true;
      this.emit('finish');
      this.#close();
      this.#conn.responseDone(this);
    };
    if (socket.writableLength === 0) process.nextTick(done);
    else socket.write('', done);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close');
  }

  /** Cuts the connection: a response that cannot be completed must not look complete. */
  destroy(_err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.#conn.socket.destroy();
    return this;
  }

  /** The connection closed under it. */
  abort(): void {
    this.destroyed = true;
    this.#close();
  }
}

function uncork(socket: Socket): void {
  socket.uncork();
}
function uncorkResponse(res: Http1Response): void {
  res.uncork();
}

/** Options of the server, as node:http's (the same names). */
export interface Http1ServerOptions {
  maxHeaderSize?: number;
  keepAliveTimeout?: number;
  /** Requests per connection; the last is answered with `Connection: close` (node's option name; 0: no limit). */
  maxRequestsPerSocket?: number;
  headersTimeout?: number;
  requestTimeout?: number;
  connectionsCheckingInterval?: number;
  requireHostHeader?: boolean;
  shouldUpgradeCallback?: (req: Http1AnyRequest) => boolean;
}

/**
 * The server: a net.Server emitting node:http's events ('request', 'checkContinue', 'clientError', 'upgrade')
 * with Http1Request/Http1BodyRequest and Http1Response.
 */
export class Http1Server extends NetServer {
  maxHeaderSize: number;
  keepAliveTimeout: number;
  maxRequestsPerSocket: number;
  headersTimeout: number;
  requestTimeout: number;
  requireHostHeader: boolean;
  shouldUpgradeCallback: (req: Http1AnyRequest) => boolean;
  /** The open connections (SlotList: a Set churned per connection kept each one alive until a mark-compact). */
  readonly http1Connections = new SlotList<Connection>();
  readonly #interval: number;
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: Http1ServerOptions = {}, onRequest?: (req: Http1AnyRequest, res: Http1Response) => void) {
    // allowHalfOpen as node:http: a client that half-closes after its request still gets the answer.
    super({ noDelay: true, allowHalfOpen: true });
    this.maxHeaderSize = options.maxHeaderSize ?? 16 * 1024;
    this.keepAliveTimeout = options.keepAliveTimeout ?? 5000;
    this.maxRequestsPerSocket = options.maxRequestsPerSocket ?? 0;
    this.headersTimeout = options.headersTimeout ?? 60_000;
    this.requestTimeout = options.requestTimeout ?? 300_000;
    this.requireHostHeader = options.requireHostHeader ?? true;
    this.shouldUpgradeCallback = options.shouldUpgradeCallback ?? (() => false);
    if (onRequest) this.on('request', onRequest);
    this.#interval = options.connectionsCheckingInterval ?? 30_000;
    this.on('connection', (socket: Socket) => this.accept(socket));
  }

  /**
   * Serves HTTP/1.1 on a connection this server did not accept itself: a TLS listener's socket once its
   * handshake chose `http/1.1` (or no ALPN), proxy-server.ts. Timeouts are checked from the first connection on.
   */
  accept(socket: Socket): void {
    // A TLS socket can close between its handshake and this call: nothing would free its parser.
    if (socket.destroyed) return;
    this.#sweep ??= setInterval(() => this.#expire(performance.now()), this.#interval).unref();
    this.http1Connections.add(new Connection(this, socket));
  }

  #expire(now: number): void {
    this.http1Connections.forEach((c) => {
      c.expire(now);
    });
  }

  /** Closes the connections with no request in progress (node's closeIdleConnections). */
  closeIdleConnections(): void {
    this.http1Connections.forEach((c) => {
      if (c.idle()) c.socket.destroy();
    });
  }

  closeAllConnections(): void {
    this.http1Connections.forEach((c) => {
      c.socket.destroy();
    });
  }

  /** Stops accepting and closes idle connections, as node:http's close (node ≥ 19). */
  override close(callback?: (err?: Error) => void): this {
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    super.close(callback);
    this.closeIdleConnections();
    return this;
  }
}

/** One client connection: its parser, the request being read, the responses in order. */
export class Connection {
  /** Its place in the server's http1Connections (-1: not in it). */
  slot = -1;
  readonly server: Http1Server;
  readonly socket: Socket;
  readonly #ptr: number;
  readonly #queue: Http1Response[] = [];
  /** The request whose body is being read. */
  #body: Http1BodyRequest | undefined;
  #paused = false;
  /** Reading stopped because too many answers wait to be sent (MAX_PIPELINED, or the socket's buffer is full). */
  #flooded = false;
  /** No further request is read: a response said `Connection: close`, or the connection was upgraded. */
  #done = false;
  // The request head being parsed.
  #url = '';
  #raw: string[] = [];
  #field = '';
  #value = '';
  #inValue = false;
  #headSize = 0;
  /** Requests read on this connection (counted against maxRequestsPerSocket). */
  #requests = 0;
  /** The request being read is the connection's last (maxRequestsPerSocket): nothing after it is parsed. */
  #last = false;
  /** Why a callback stopped llhttp (E_USER): the clientError code. */
  #refusal = '';
  #refusalResponse = '';
  /** Deadlines (performance.now() ms; -1: none): headers and whole request since its first byte, idle since. */
  #headersStart: number;
  #requestStart = -1;
  #idleSince = -1;

  constructor(server: Http1Server, socket: Socket) {
    this.server = server;
    this.socket = socket;
    this.#ptr = llhttp().llhttp_alloc(TYPE.REQUEST);
    this.#headersStart = performance.now();
    socket.on('data', (chunk: Buffer) => this.execute(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('drain', () => this.#queue[0]?.emit('drain'));
    socket.on('end', () => this.#onEnd());
    socket.on('close', () => this.#closed());
  }

  /**
   * The client half-closed (FIN), which node:http (httpAllowHalfOpen false) takes for a client gone: a message
   * cut mid-way is a parse error (its parser's finish: HPE_INVALID_EOF_STATE, 400 through 'clientError'); every
   * request in progress is aborted (its response's 'close' comes before 'finish') and our side ends too.
   */
  #onEnd(): void {
    const partial = !this.#done && this.#requestStart >= 0;
    this.#done = true;
    this.socket.removeAllListeners('data');
    if (partial) this.#clientError(new Http1ParseError('HPE_INVALID_EOF_STATE', 'Invalid EOF state', 0, Buffer.alloc(0)));
    if (this.#body && !this.#body.complete) this.#body.destroy(new Error('aborted'));
    for (const r of this.#queue) r.abort();
    this.#queue.length = 0;
    if (this.socket.writable) this.socket.end();
  }

  #closed(): void {
    this.server.http1Connections.delete(this);
    if (this.#body && !this.#body.complete) this.#body.destroy(new Error('aborted'));
    for (const r of this.#queue) r.abort();
    this.#queue.length = 0;
    llhttp().llhttp_free(this.#ptr);
  }

  idle(): boolean {
    return this.#queue.length === 0 && this.#requestStart < 0;
  }

  expire(now: number): void {
    const s = this.server;
    if (this.#headersStart >= 0 && s.headersTimeout > 0 && now - this.#headersStart > s.headersTimeout) this.#timeout();
    else if (this.#requestStart >= 0 && s.requestTimeout > 0 && now - this.#requestStart > s.requestTimeout) this.#timeout();
    else if (this.#idleSince >= 0 && s.keepAliveTimeout > 0 && now - this.#idleSince > s.keepAliveTimeout) this.socket.destroy();
  }

  #timeout(): void {
    this.#headersStart = this.#requestStart = -1;
    this.#done = true;
    this.socket.removeAllListeners('data');
    this.#clientError(new RequestTimeoutError('request timeout'));
  }

  #clientError(err: Error): void {
    const socket = this.socket as Socket & { _httpMessage?: Http1Response };
    socket._httpMessage = this.#queue[0];
    if (this.server.listenerCount('clientError') > 0) this.server.emit('clientError', err, socket);
    else socket.destroy();
  }

  execute(chunk: Buffer): void {
    if (this.#done) return;
    const l = llhttp();
    if (chunk.length > bufSize) {
      if (bufPtr) l.free(bufPtr);
      bufSize = Math.ceil(chunk.length / 4096) * 4096;
      bufPtr = l.malloc(bufSize);
    }
    view().set(chunk, bufPtr);
    current = this;
    let ret: number;
    try {
      ret = l.llhttp_execute(this.#ptr, bufPtr, chunk.length);
    } finally {
      current = null;
    }
    if (ret === E_OK) return;
    if (ret === E_PAUSED && this.#last) {
      this.#done = true;
      this.socket.removeAllListeners('data');
      return;
    }
    const at = l.llhttp_get_error_pos(this.#ptr) - bufPtr;
    if (ret === E_PAUSED_UPGRADE || ret === E_PAUSED) {
      this.#upgradeOrConnect(chunk.subarray(at));
      return;
    }
    this.#done = true;
    this.socket.removeAllListeners('data');
    if (ret === E_PAUSED_H2) {
      this.#clientError(new Http1ParseError('HPE_PAUSED_H2_UPGRADE', 'Pause on PRI/Upgrade', at, chunk));
      return;
    }
    if (this.#refusalResponse !== '') {
      this.socket.end(this.#refusalResponse);
      return;
    }
    // A callback's refusal (llhttp reports one from on_headers_complete as CB_HEADERS_COMPLETE).
    const code = this.#refusal !== '' ? this.#refusal : `HPE_${ERROR_NAMES[ret] ?? 'INTERNAL'}`;
    const rp = l.llhttp_get_error_reason(this.#ptr);
    const reason = rp ? Buffer.from(l.memory.buffer, rp, new Uint8Array(l.memory.buffer, rp).indexOf(0)).toString('latin1') : code;
    this.#clientError(new Http1ParseError(code, reason, at, chunk));
  }

  /** llhttp stopped after an Upgrade (or CONNECT) request's head: a tunnel if allowed, else closed. */
  #upgradeOrConnect(head: Buffer): void {
    const req = this.#upgradeReq;
    this.#upgradeReq = undefined;
    if (req === undefined) {
      // The request was handled as a plain one (the upgrade was not allowed): parse on.
      llhttp().llhttp_resume_after_upgrade(this.#ptr);
      if (head.length > 0) this.execute(head);
      return;
    }
    this.#done = true;
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('end');
    this.server.http1Connections.delete(this);
    this.#headersStart = this.#requestStart = this.#idleSince = -1;
    if (req.method === 'CONNECT' || this.server.listenerCount('upgrade') === 0) {
      this.socket.destroy();
      return;
    }
    this.server.emit('upgrade', req, this.socket, head);
  }
  #upgradeReq: Http1AnyRequest | undefined;

  onMessageBegin(): number {
    this.#url = '';
    this.#raw = [];
    this.#field = '';
    this.#value = '';
    this.#inValue = false;
    this.#headSize = 0;
    const now = performance.now();
    this.#headersStart = now;
    this.#requestStart = now;
    this.#idleSince = -1;
    return 0;
  }

  #grow(len: number): number {
    this.#headSize += len;
    // node's parser: HPE_HEADER_OVERFLOW once the bytes reach the limit (>=, not >).
    if (this.#headSize < this.server.maxHeaderSize) return 0;
    this.#refusal = 'HPE_HEADER_OVERFLOW';
    return E_USER;
  }

  onUrl(at: number, len: number): number {
    this.#url += (view() as Latin1).latin1Slice(at, at + len);
    return this.#grow(len);
  }

  onHeaderField(at: number, len: number): number {
    if (this.#inValue) {
      if (this.#raw.length >= 2 * MAX_HEADERS) {
        this.#refusal = 'HPE_HEADER_OVERFLOW';
        return E_USER;
      }
      this.#raw.push(this.#field, this.#value);
      this.#field = '';
      this.#value = '';
      this.#inValue = false;
    }
    this.#field += (view() as Latin1).latin1Slice(at, at + len);
    return this.#grow(len);
  }

  onHeaderValue(at: number, len: number): number {
    this.#inValue = true;
    this.#value += (view() as Latin1).latin1Slice(at, at + len);
    return this.#grow(len);
  }

  onHeadersComplete(): number {
    const l = llhttp();
    const p = this.#ptr;
    if (this.#inValue || this.#field !== '') this.#raw.push(this.#field, this.#value);
    if (this.#raw.length > 2 * MAX_HEADERS) {
      this.#refusal = 'HPE_HEADER_OVERFLOW';
      return E_USER;
    }
    this.#headersStart = -1;
    const raw = this.#raw;
    const headers = headersObject(raw);
    const methodIndex = l.llhttp_get_method(p);
    const head: RequestHead = {
      socket: this.socket,
      method: METHOD_NAMES[methodIndex] ?? 'GET',
      url: this.#url,
      rawHeaders: raw,
      headers,
      httpVersionMajor: l.llhttp_get_http_major(p),
      httpVersionMinor: l.llhttp_get_http_minor(p),
    };
    const cl = headers['content-length'];
    const hasBody = headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
    const upgrade = l.llhttp_get_upgrade(p) === 1;
    const req: Http1AnyRequest =
      hasBody && !(upgrade && methodIndex === METHOD_CONNECT) ? new Http1BodyRequest(head, this) : new Http1Request(head);
    if (upgrade) {
      if (methodIndex === METHOD_CONNECT || this.server.shouldUpgradeCallback(req)) {
        req.upgrade = true;
        this.#upgradeReq = req;
        // Skip the body: the rest of the bytes belong to the tunnel (llhttp returns PAUSED_UPGRADE).
        return 2;
      }
    }
    // node: an HTTP/1.1 request without Host is answered 400 and the connection closed.
    if (this.server.requireHostHeader && head.httpVersionMajor === 1 && head.httpVersionMinor === 1 && headers.host === undefined) {
      this.#refusalResponse = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';
      return E_USER;
    }
    // nginx keepalive_requests: the connection's last request is answered with `Connection: close` (and any
    // pipelined after it are not read: responseDone ends the connection).
    const max = this.server.maxRequestsPerSocket;
    if (max > 0 && ++this.#requests >= max) this.#last = true;
    const keepAlive = l.llhttp_should_keep_alive(p) === 1 && !this.#last;
    const res = new Http1Response(this, req, keepAlive, methodIndex === METHOD_HEAD);
    this.#queue.push(res);
    if (this.#queue.length === 1) res.socket = this.socket;
    if (req instanceof Http1BodyRequest) this.#body = req;
    // Too many answers waiting (a client pipelining without reading): stop reading until they drain, as node.
    if (this.#queue.length > 1 && !this.#flooded && (this.#queue.length > MAX_PIPELINED || this.socket.writableNeedDrain)) {
      this.#flooded = true;
      this.socket.pause();
    }
    const expect = headers.expect;
    // node looks at Expect on HTTP/1.1 only.
    if (expect !== undefined && head.httpVersionMajor === 1 && head.httpVersionMinor === 1) {
      if (/(?:^|\W)100-continue(?:$|\W)/i.test(expect)) {
        if (this.server.listenerCount('checkContinue') > 0) this.server.emit('checkContinue', req, res);
        else {
          res.writeContinue();
          this.server.emit('request', req, res);
        }
      } else {
        res.shouldKeepAlive = false;
        res.writeHead(417);
        res.end();
      }
      return 0;
    }
    this.server.emit('request', req, res);
    return 0;
  }

  onBody(at: number, len: number): number {
    const body = this.#body;
    if (body === undefined || body.destroyed) return 0;
    // A copy: the bytes are in llhttp's memory, reused by the next execute.
    if (!body.push(Buffer.from(view().subarray(at, at + len)))) {
      this.#paused = true;
      this.socket.pause();
    }
    return 0;
  }

  onMessageComplete(): number {
    this.#requestStart = -1;
    const body = this.#body;
    if (body) {
      body.complete = true;
      this.#body = undefined;
      if (!body.destroyed) body.push(null);
    }
    if (this.#paused) this.resumeBody();
    // The connection's last request: llhttp stops here (E_PAUSED), so requests pipelined after it are never read.
    return this.#last ? E_PAUSED : 0;
  }

  resumeBody(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (!this.#flooded) this.socket.resume();
  }

  /** A response finished: the next one gets the socket, or the connection closes or goes idle. */
  responseDone(res: Http1Response): void {
    if (this.#queue[0] !== res) return;
    this.#queue.shift();
    if (!res.shouldKeepAlive) {
      this.#done = true;
      for (const r of this.#queue) r.abort();
      this.#queue.length = 0;
      this.socket.end();
      return;
    }
    if (this.#flooded && this.#queue.length <= MAX_PIPELINED && !this.socket.writableNeedDrain) {
      this.#flooded = false;
      if (!this.#paused) this.socket.resume();
    }
    const next = this.#queue[0];
    if (next) next.attach(this.socket);
    else if (this.#done) this.socket.end();
    else if (this.#requestStart < 0) this.#idleSince = performance.now();
  }
}

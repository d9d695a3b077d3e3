/**
 * The bare undici proxy loop with a lean server side (loadtest/proxy-bench.ts target `undici-lean`): what
 * loadtest/bare-undici-proxy.ts does, but the client side is a net.Server whose sockets are parsed by undici's
 * llhttp WASM build in request mode (our own instance and callbacks) and answered by hand (status line and
 * headers as one latin1 string, the body corked behind it), instead of node:http's IncomingMessage and
 * ServerResponse. A prototype that measures what a leaner server side would save (issue #19); it keeps what a
 * fair comparison needs: keep-alive, pipelined requests answered in order, HEAD, HTTP/1.0, Connection: close,
 * request bodies streamed to the upstream with backpressure, Content-Length or chunked responses, 400 on a parse
 * error, 431 past 16 KiB of request head (node's default), and node's keep-alive idle timeout (75 s here, as
 * the bare loop sets it). Not a gateway: no Upgrade, no Expect: 100-continue, no header or request timeouts.
 *
 *   node loadtest/bare-lean-proxy.ts PORT UPSTREAM_PORT...
 *   node loadtest/bare-lean-proxy.ts PORT            # no upstream: answers itself, as bare-undici-proxy.ts
 */
import { createRequire } from 'node:module';
import { createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import { directBody } from './direct-body.ts';

const require = createRequire(import.meta.url);
const { TYPE, ERROR, METHODS } = require('undici/lib/llhttp/constants.js') as {
  TYPE: { REQUEST: number };
  ERROR: { OK: number; USER: number; PAUSED: number; PAUSED_UPGRADE: number; CB_HEADERS_COMPLETE: number };
  METHODS: Record<string, number>;
};
const METHOD_NAMES: string[] = [];
for (const [name, n] of Object.entries(METHODS)) METHOD_NAMES[n] = name;
const MAX_HEAD = 16 * 1024;

const [port = 0, ...ups] = process.argv.slice(2).map(Number);
const pools = ups.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: 128, pipelining: 1 }));
let next = 0;

// ---------------------------------------------------------------- llhttp (WASM), one instance for all connections

/** The WebAssembly global (Node's types leave it to lib.dom), as much of it as this file uses. */
const Wasm = (
  globalThis as unknown as {
    WebAssembly: {
      Module: new (bytes: Uint8Array) => object;
      Instance: new (module: object, imports: object) => { exports: unknown };
    };
  }
).WebAssembly;
/** Buffer's latin1 decoder without toString's argument handling (what undici's parser uses too). */
type Latin1 = Buffer & { latin1Slice(start?: number, end?: number): string };

interface LlhttpExports {
  memory: { buffer: ArrayBuffer };
  malloc(n: number): number;
  free(p: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(p: number): void;
  llhttp_execute(p: number, data: number, len: number): number;
  llhttp_get_method(p: number): number;
  llhttp_get_http_major(p: number): number;
  llhttp_get_http_minor(p: number): number;
  llhttp_should_keep_alive(p: number): number;
  llhttp_get_upgrade(p: number): number;
  llhttp_get_error_pos(p: number): number;
}

/** The connection whose bytes llhttp is executing (callbacks carry only the parser pointer). */
let current: Conn | null = null;
let mem = Buffer.alloc(0);
const view = (): Buffer => {
  if (mem.buffer !== ll.memory.buffer) mem = Buffer.from(ll.memory.buffer);
  return mem;
};
const str = (at: number, len: number): string => (view() as Latin1).latin1Slice(at, at + len);

const ll = new Wasm.Instance(new Wasm.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js')), {
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
}).exports as unknown as LlhttpExports;

let bufPtr = 0;
let bufSize = 0;

// ---------------------------------------------------------------- one exchange (request and its response)

class Exchange implements Dispatcher.DispatchHandler {
  readonly conn: Conn;
  readonly head: boolean;
  readonly keepAlive: boolean;
  readonly http10: boolean;
  body: Readable | null = null;
  /** Response bytes written before this exchange is at the head of the connection's queue. */
  held: (string | Buffer)[] | null = null;
  chunked = false;
  /** The response head went out (or is held): a failure after it can only cut the connection. */
  started = false;
  done = false;
  /**
   * This response closes the connection (its request asked, or HTTP/1.0 without a length, or an error): a flag of
   * the exchange, not the connection, so a pipelined request's `Connection: close` does not leak into the answers
   * before it when its upstream answers first.
   */
  closing = false;
  controller: Dispatcher.DispatchController | null = null;
  constructor(conn: Conn, head: boolean, keepAlive: boolean, http10: boolean) {
    this.conn = conn;
    this.head = head;
    this.keepAlive = keepAlive;
    this.http10 = http10;
  }
  write(data: string | Buffer): boolean {
    if (this.conn.queue[0] !== this) {
      this.held ??= [];
      this.held.push(data);
      return true;
    }
    return typeof data === 'string' ? this.conn.socket.write(data, 'latin1') : this.conn.socket.write(data);
  }
  /** No upstream (proxy-bench's `-direct` targets): the answer bare-undici-proxy.ts gives then, by hand. */
  direct(url: string): void {
    const body = directBody(url);
    this.started = true;
    if (!this.keepAlive) this.closing = true;
    const connection = this.closing
      ? 'Connection: close\r\n'
      : this.http10
        ? 'Connection: keep-alive\r\nKeep-Alive: timeout=75\r\n'
        : 'Keep-Alive: timeout=75\r\n';
    this.conn.cork();
    this.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n${connection}\r\n`);
    if (!this.head) this.write(body);
    this.onResponseEnd();
  }
  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
  }
  onResponseStart(c: Dispatcher.DispatchController, status: number, _h: unknown, statusText: string): void {
    const raw = c.rawHeaders as Buffer[];
    let head = `HTTP/1.1 ${status} ${statusText}\r\n`;
    let length = false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = (raw[i] as Latin1).latin1Slice();
      // Only names of these lengths can be connection (10), keep-alive (10), content-length (14) or
      // transfer-encoding (17): lower-case just those.
      const n = name.length;
      if (n === 10 || n === 14 || n === 17) {
        const lower = name.toLowerCase();
        if (lower === 'connection' || lower === 'keep-alive' || lower === 'transfer-encoding') continue;
        if (lower === 'content-length') length = true;
      }
      head += `${name}: ${(raw[i + 1] as Latin1).latin1Slice()}\r\n`;
    }
    const bodyless = this.head || status === 204 || status === 304;
    if (!length && !bodyless) {
      if (this.http10) this.closing = true;
      else {
        this.chunked = true;
        head += 'Transfer-Encoding: chunked\r\n';
      }
    }
    if (!this.keepAlive || this.closing) {
      this.closing = true;
      head += 'Connection: close\r\n\r\n';
    } else head += this.http10 ? 'Connection: keep-alive\r\nKeep-Alive: timeout=75\r\n\r\n' : 'Keep-Alive: timeout=75\r\n\r\n';
    this.started = true;
    this.conn.cork();
    this.write(head);
  }
  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.head) return;
    this.conn.cork();
    let ok: boolean;
    if (this.chunked) {
      this.write(`${chunk.length.toString(16)}\r\n`);
      this.write(chunk);
      ok = this.write('\r\n');
    } else ok = this.write(chunk);
    if (!ok) {
      c.pause();
      this.conn.socket.once('drain', () => c.resume());
    }
  }
  onResponseEnd(): void {
    if (this.chunked) this.write('0\r\n\r\n');
    this.done = true;
    this.conn.finished(this);
  }
  onResponseError(_c: Dispatcher.DispatchController, _err: Error): void {
    // Before the head: a 502; after it, the response is cut (the connection closes after what was sent).
    if (!this.started) this.write('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    else if (this.conn.queue[0] === this) this.conn.socket.destroy();
    this.closing = true;
    this.done = true;
    this.conn.finished(this);
  }
}

// ---------------------------------------------------------------- one client connection

class Conn {
  readonly socket: Socket;
  readonly ptr: number;
  readonly queue: Exchange[] = [];
  corked = false;
  /** The sweep tick at which the connection last went idle (no exchange in flight), for the keep-alive timeout. */
  idleSince = tick;
  url = '';
  headers: string[] = [];
  field = '';
  value = '';
  inValue = false;
  headSize = 0;
  /** Why llhttp was stopped from a callback (ERROR.USER), as a status line. */
  refusal = '431 Request Header Fields Too Large';
  body: Readable | null = null;
  constructor(socket: Socket) {
    this.socket = socket;
    this.ptr = ll.llhttp_alloc(TYPE.REQUEST);
    socket.setNoDelay(true);
    conns.add(this);
    socket.on('data', (chunk: Buffer) => this.execute(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      conns.delete(this);
      ll.llhttp_free(this.ptr);
      this.body?.destroy();
      for (const x of this.queue) x.controller?.abort(new Error('client closed'));
    });
  }
  cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(uncork, this);
  }
  execute(chunk: Buffer): void {
    if (chunk.length > bufSize) {
      if (bufPtr) ll.free(bufPtr);
      bufSize = Math.ceil(chunk.length / 4096) * 4096;
      bufPtr = ll.malloc(bufSize);
    }
    view().set(chunk, bufPtr);
    current = this;
    let ret: number;
    try {
      ret = ll.llhttp_execute(this.ptr, bufPtr, chunk.length);
    } finally {
      current = null;
    }
    if (ret === ERROR.OK) return;
    if (ret === ERROR.PAUSED_UPGRADE || ret === ERROR.PAUSED) {
      // Upgrade (and CONNECT) is not part of the bare loop: refuse it.
      this.fail('501 Not Implemented');
    } else this.fail(ret === ERROR.USER || ret === ERROR.CB_HEADERS_COMPLETE ? this.refusal : '400 Bad Request');
  }
  fail(status: string): void {
    this.socket.removeAllListeners('data');
    this.socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  }
  onMessageBegin(): number {
    this.url = '';
    this.headers = [];
    this.field = '';
    this.value = '';
    this.inValue = false;
    this.headSize = 0;
    return 0;
  }
  grow(len: number): number {
    this.headSize += len;
    return this.headSize > MAX_HEAD ? ERROR.USER : 0;
  }
  onUrl(at: number, len: number): number {
    this.url += str(at, len);
    return this.grow(len);
  }
  onHeaderField(at: number, len: number): number {
    if (this.inValue) {
      this.headers.push(this.field, this.value);
      this.field = '';
      this.value = '';
      this.inValue = false;
    }
    this.field += str(at, len);
    return this.grow(len);
  }
  onHeaderValue(at: number, len: number): number {
    this.inValue = true;
    this.value += str(at, len);
    return this.grow(len);
  }
  onHeadersComplete(): number {
    if (this.inValue || this.field !== '') this.headers.push(this.field, this.value);
    if (ll.llhttp_get_upgrade(this.ptr) === 1) {
      this.refusal = '501 Not Implemented';
      return ERROR.USER;
    }
    const method = METHOD_NAMES[ll.llhttp_get_method(this.ptr)]!;
    const http10 = ll.llhttp_get_http_minor(this.ptr) === 0;
    const keepAlive = ll.llhttp_should_keep_alive(this.ptr) === 1;
    const raw = this.headers;
    const headers: string[] = [];
    let hasBody = false;
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (lower === 'content-length') hasBody = true;
      // undici frames a body of unknown length itself (and refuses a Transfer-Encoding header next to one).
      if (lower === 'transfer-encoding') {
        hasBody = true;
        continue;
      }
      if (lower === 'connection' || lower === 'keep-alive') continue;
      headers.push(raw[i]!, raw[i + 1]!);
    }
    const peer = this.socket.remoteAddress ?? '';
    headers.push('X-Real-IP', peer, 'X-Forwarded-For', peer, 'X-Forwarded-Proto', 'http');
    const x = new Exchange(this, method === 'HEAD', keepAlive, http10);
    this.queue.push(x);
    if (pools.length === 0) {
      x.direct(this.url);
      return 0;
    }
    let body: Readable | null = null;
    if (hasBody) {
      const socket = this.socket;
      body = new Readable({ read: () => socket.resume() });
      this.body = body;
    }
    const pool = pools[next]!;
    next = (next + 1) % pools.length;
    pool.dispatch({ method: method as Dispatcher.HttpMethod, path: this.url, headers, body }, x);
    return 0;
  }
  onBody(at: number, len: number): number {
    // A copy: the bytes live in the WASM memory, reused by the next execute.
    if (this.body && !this.body.push(Buffer.from(view().subarray(at, at + len)))) this.socket.pause();
    return 0;
  }
  onMessageComplete(): number {
    if (this.body) {
      this.body.push(null);
      this.body = null;
    }
    return 0;
  }
  /** An exchange's response ended: send what the next ones held back, in order; close if asked. */
  finished(x: Exchange): void {
    if (this.queue[0] !== x) return;
    this.queue.shift();
    this.idleSince = tick;
    if (x.closing) {
      this.queue.length = 0;
      this.socket.end();
      return;
    }
    while (this.queue.length > 0) {
      const n = this.queue[0]!;
      const held = n.held;
      n.held = null;
      if (held) for (const d of held) n.write(d);
      if (!n.done) break;
      this.queue.shift();
      if (n.closing) {
        this.socket.end();
        return;
      }
    }
  }
}

/**
 * node:http's keep-alive timeout without a timer per socket (net's socket.setTimeout re-arms on every read and
 * write): a one-second sweep closes connections idle for 75 s (the bare loop's server.keepAliveTimeout).
 */
const conns = new Set<Conn>();
let tick = 0;
setInterval(() => {
  tick++;
  for (const c of conns) if (c.queue.length === 0 && tick - c.idleSince > 75) c.socket.destroy();
}, 1000).unref();

function uncork(c: Conn): void {
  c.corked = false;
  c.socket.uncork();
}

const server = createServer({ noDelay: true }, (socket) => new Conn(socket));
server.listen(port, '127.0.0.1');
// Exit at once (and so write a --cpu-prof profile): nothing here needs draining.
process.once('SIGTERM', () => process.exit(0));

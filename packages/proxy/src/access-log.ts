import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import pino from 'pino';
import { REQUEST_CHANNEL, type RequestEvent } from './channels.ts';

/** One access-log line. Field names are the contract documented in docs/operations.md. */
export interface AccessRecord {
  /** Arrival time, ISO 8601 UTC. */
  readonly time: string;
  readonly request_id: string;
  /** The client address (after trusted-proxy processing); `peer` is the TCP peer. */
  readonly client: string;
  readonly peer: string;
  readonly method: string;
  readonly host: string | undefined;
  /** The request target as sent, query included (nginx `$request_uri`). */
  readonly path: string;
  readonly http_version: string;
  readonly status: number;
  /** Response body bytes sent to the client; `bytes_in` the request body bytes forwarded. */
  readonly bytes: number;
  readonly bytes_in: number;
  readonly pool: string | undefined;
  /** The server that answered; `upstreams` every server tried, in order. */
  readonly upstream: string | undefined;
  readonly upstreams: readonly string[];
  readonly attempts: number;
  /** Time in upstream attempts, summed; `duration_ms` arrival to the last byte out. */
  readonly upstream_ms: number;
  readonly duration_ms: number;
  readonly user_agent: string | undefined;
  readonly referer: string | undefined;
  /** TgError code when the proxy answered or cut the request. */
  readonly error: string | undefined;
  readonly aborted: boolean;
  readonly upgraded: boolean;
}

/** Maps a request event to its access-log record (pure). */
export function accessRecord(e: RequestEvent): AccessRecord {
  return {
    time: new Date(e.time).toISOString(),
    request_id: e.requestId,
    client: e.clientAddress,
    peer: e.peerAddress,
    method: e.method,
    host: e.host,
    path: e.url,
    http_version: e.httpVersion,
    status: e.status,
    bytes: e.bytesSent,
    bytes_in: e.bytesReceived,
    pool: e.pool,
    upstream: e.upstream,
    upstreams: e.upstreams,
    attempts: e.attempts,
    upstream_ms: e.upstreamDurationMs,
    duration_ms: e.durationMs,
    user_agent: e.userAgent,
    referer: e.referer,
    error: e.error,
    aborted: e.aborted,
    upgraded: e.upgraded,
  };
}

/**
 * `,"name":value` as JSON.stringify writes a property: left out when undefined; strings (and the upstreams list)
 * escaped by JSON.stringify itself; NaN and ±Infinity as null. One function per type, each seeing one type.
 */
function strField(name: string, value: string | readonly string[] | undefined): string {
  return value === undefined ? '' : `,"${name}":${JSON.stringify(value)}`;
}
function numField(name: string, value: number | undefined): string {
  if (value === undefined) return '';
  return Number.isFinite(value) ? `,"${name}":${value === 0 ? 0 : value}` : `,"${name}":null`;
}
function boolField(name: string, value: boolean | undefined): string {
  return value === undefined ? '' : value ? `,"${name}":true` : `,"${name}":false`;
}

let lastTime = Number.NaN;
let lastIso = '';

/**
 * `JSON.stringify(accessRecord(e))` plus a newline, byte for byte, without the intermediate record: the same
 * fields in the same order, undefined ones left out, strings escaped by JSON.stringify. The ISO time of the last
 * millisecond is reused (at thousands of requests per second most lines share it). About half the access log's
 * CPU per request (loadtest/README.md).
 */
export function accessLine(e: RequestEvent): string {
  if (e.time !== lastTime) {
    lastIso = new Date(e.time).toISOString();
    lastTime = e.time;
  }
  return (
    `{"time":"${lastIso}"${strField('request_id', e.requestId)}${strField('client', e.clientAddress)}${strField('peer', e.peerAddress)}` +
    `${strField('method', e.method)}${strField('host', e.host)}${strField('path', e.url)}${strField('http_version', e.httpVersion)}` +
    `${numField('status', e.status)}${numField('bytes', e.bytesSent)}${numField('bytes_in', e.bytesReceived)}${strField('pool', e.pool)}` +
    `${strField('upstream', e.upstream)}${strField('upstreams', e.upstreams)}${numField('attempts', e.attempts)}` +
    `${numField('upstream_ms', e.upstreamDurationMs)}${numField('duration_ms', e.durationMs)}${strField('user_agent', e.userAgent)}` +
    `${strField('referer', e.referer)}${strField('error', e.error)}${boolField('aborted', e.aborted)}${boolField('upgraded', e.upgraded)}}\n`
  );
}

/**
 * Bytes of lines gathered before a write to a pipe, socket or terminal: below sonic-boom's maxWrite of 4096 =
 * PIPE_BUF, so that cluster workers sharing a stdout pipe never interleave halves of lines.
 */
const PIPE_BATCH_BYTES = 3584;
const PIPE_MAX_WRITE = 4096;
/**
 * To a regular file (or /dev/null) a write of any size is one write of whole lines at the file's end (one
 * open file description, whose offset the kernel moves per write), so lines gather up to 64 KiB, nginx's
 * `access_log ... buffer=` default. Every write is an asynchronous round trip through libuv's thread pool of
 * ~20 µs alone and 100+ µs on the busy proxy's core; 3.5 KiB batches cost ~10 % more CPU per request at 100 B
 * bodies, 64 KiB ones ~1 % (loadtest/README.md).
 */
const FILE_BATCH_BYTES = 60 * 1024;
const FILE_MAX_WRITE = 64 * 1024;
/** The longest a line waits for its batch. */
export const ACCESS_LOG_FLUSH_MS = 200;
const FLUSH_MS = ACCESS_LOG_FLUSH_MS;

/** The batch size and largest write for `fd`: large for a file or a character device that is not a terminal. */
export function accessLogBatch(fd: number): { readonly minLength: number; readonly maxWrite: number } {
  let file = false;
  try {
    const st = fstatSync(fd);
    file = st.isFile() || (st.isCharacterDevice() && !isatty(fd));
  } catch {
    // An fd that cannot be inspected gets the small batches that suit every kind.
  }
  return file ? { minLength: FILE_BATCH_BYTES, maxWrite: FILE_MAX_WRITE } : { minLength: PIPE_BATCH_BYTES, maxWrite: PIPE_MAX_WRITE };
}

export interface AccessLogOptions {
  /** File descriptor to write to; default 1 (stdout); one other than 1 or 2 is closed by close(). Ignored with `destination`. */
  readonly fd?: number;
  /** Where lines go instead of an fd (tests); receives one JSON line per call. */
  readonly destination?: { write(line: string): unknown };
  /** Lines kept in memory while the destination is slow; beyond it lines are dropped, never the proxy blocked. */
  readonly maxBufferBytes?: number;
}

/** A running access log. */
export interface AccessLog extends AsyncDisposable {
  /** Lines dropped because the destination could not keep up. */
  dropped(): number;
  /** Unsubscribes and flushes what is buffered. */
  close(): Promise<void>;
}

/** UTF-8 takes at most 3 bytes per UTF-16 code unit (a surrogate pair, 2 units, takes 4). */
const MAX_UTF8_PER_UNIT = 3;

/**
 * Lines encoded straight into one buffer per batch (`utf8Write`: no Buffer per line, which cost ~2 µs of the
 * log's ~5 per request in a profile, loadtest/README.md), handed to the destination whole once `minLength`
 * bytes have gathered or `FLUSH_MS` after the batch's first line. A batch never exceeds `maxWrite` bytes and
 * holds whole lines only, so each is one write() of whole lines (accessLogBatch). sonic-boom batches too, but
 * only Buffers or strings it is given one by one: this is the part it cannot do.
 */
class LineBatcher {
  readonly #minLength: number;
  readonly #maxWrite: number;
  readonly #send: (batch: Buffer) => void;
  #buf: Buffer;
  #used = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(batch: { readonly minLength: number; readonly maxWrite: number }, send: (batch: Buffer) => void) {
    this.#minLength = batch.minLength;
    this.#maxWrite = batch.maxWrite;
    this.#send = send;
    this.#buf = Buffer.allocUnsafe(this.#maxWrite);
  }

  add(line: string): void {
    const most = line.length * MAX_UTF8_PER_UNIT;
    if (this.#used + most > this.#maxWrite) {
      this.flush();
      // A line that could be longer than a whole batch goes alone (written in pieces, as sonic-boom would).
      if (most > this.#maxWrite) {
        this.#send(Buffer.from(line));
        return;
      }
    }
    this.#used += this.#buf.write(line, this.#used);
    if (this.#used >= this.#minLength) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#used === 0) return;
    // The destination keeps the batch until written: the next one gets a buffer of its own.
    const batch = this.#buf.subarray(0, this.#used);
    this.#buf = Buffer.allocUnsafe(this.#maxWrite);
    this.#used = 0;
    this.#send(batch);
  }
}

/**
 * Writes one JSON line per finished request, fed from the `tiergate:proxy:request` channel so the
 * hot path does no logging. The default destination is pino's asynchronous SonicBoom on fd 1: writes
 * never block the event loop; lines are gathered into batches (accessLogBatch, LineBatcher), a line waiting at
 * most ACCESS_LOG_FLUSH_MS; to a pipe or socket each write() carries whole lines of at most 4096 bytes (PIPE_BUF),
 * which Linux writes atomically to a pipe, so cluster workers sharing stdout never interleave halves of
 * lines; to a file, up to 64 KiB. When the buffer passes `maxBufferBytes` lines are dropped (and counted) instead of growing memory.
 */
export function startAccessLog(options: AccessLogOptions = {}): AccessLog {
  let dropped = 0;
  const fd = options.fd ?? 1;
  const batch = accessLogBatch(fd);
  const sonic = options.destination
    ? undefined
    : pino.destination({
        dest: fd,
        sync: false,
        // Batches come whole from LineBatcher: each is written as it comes (or queued behind the write in flight).
        minLength: 0,
        maxWrite: batch.maxWrite,
        maxLength: options.maxBufferBytes ?? 16 * 1024 * 1024,
        contentMode: 'buffer',
      });
  // A dropped batch counts its lines.
  sonic?.on('drop', (data: Buffer) => {
    for (let i = data.indexOf(0x0a); i !== -1; i = data.indexOf(0x0a, i + 1)) dropped++;
  });
  const batcher = sonic ? new LineBatcher(batch, (b) => sonic.write(b as unknown as string)) : undefined;
  // pino's logger would add a level and re-serialize; the line is exactly the record, written by pino's destination.
  const onRequest = batcher
    ? (m: unknown) => batcher.add(accessLine(m as RequestEvent))
    : (m: unknown) => options.destination!.write(accessLine(m as RequestEvent));
  subscribe(REQUEST_CHANNEL, onRequest);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      unsubscribe(REQUEST_CHANNEL, onRequest);
      if (!sonic) return resolve();
      batcher?.flush();
      // end() writes what is buffered, then emits close (fds 1 and 2 are left open; another fd is closed).
      sonic.once('close', () => resolve());
      sonic.once('error', () => resolve());
      sonic.end();
    });
    return closing;
  };
  return { dropped: () => dropped, close, [Symbol.asyncDispose]: close };
}

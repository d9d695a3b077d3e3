import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { type ClientHttp2Session, connect as h2connect, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** A self-signed certificate for localhost / 127.0.0.1 made with the machine's openssl, as files (a listener reads paths). */
export async function certFiles(): Promise<{ cert: string; key: string } & AsyncDisposable> {
  const dir = await mkdtemp(join(tmpdir(), 'tg-h2-cert-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'];
  args.push('-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert);
  try {
    await promisify(execFile)('openssl', args);
  } catch (err) {
    throw new Error('the TLS tests need the openssl command (apt-get install openssl)', { cause: err });
  }
  return { cert, key, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

/** A node:http2 client session (TLS with ALPN h2, or h2c prior knowledge for an `http:` URL). */
export function h2client(url: string): ClientHttp2Session & AsyncDisposable {
  const session = h2connect(url, { rejectUnauthorized: false });
  session.on('error', () => {});
  return Object.assign(session, {
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => {
        if (session.destroyed) resolve();
        else session.close(() => resolve());
        setTimeout(() => {
          session.destroy();
          resolve();
        }, 500).unref();
      }),
  });
}

/** One h2 request: status, response headers and body text. */
export function h2request(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body?: string,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let response: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      response = h;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      if (response[':status'] === undefined) reject(new Error(`stream ${stream.id} closed without a response (code ${stream.rstCode})`));
      else resolve({ status: Number(response[':status']), headers: response, body: Buffer.concat(chunks).toString() });
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

// ---- Raw frames (RFC 9113 §4), for clients that misbehave on purpose ----

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const;
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK (RFC 7541 §6.2.2) literal fields without indexing, new names, no Huffman: enough for short test fields. */
export function hpack(fields: readonly [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) parts.push(Buffer.from([0]), hpackString(name), hpackString(value));
  return Buffer.concat(parts);
}

function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  // 7-bit prefix integer (RFC 7541 §5.1).
  const len: number[] = [];
  if (bytes.length < 127) len.push(bytes.length);
  else {
    len.push(127);
    let n = bytes.length - 127;
    while (n >= 128) {
      len.push((n % 128) + 128);
      n = Math.floor(n / 128);
    }
    len.push(n);
  }
  return Buffer.concat([Buffer.from(len), bytes]);
}

/** A GET's header block for `authority`. */
export function getFields(authority: string, path = '/'): [string, string][] {
  return [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', path],
    [':authority', authority],
  ];
}

/** What a raw client saw from the server. */
export interface Seen {
  goaway: { code: number; lastStream: number } | undefined;
  /** stream id → RST_STREAM error code. */
  readonly resets: Map<number, number>;
  /** Streams that got a HEADERS frame (a response). */
  readonly responded: Set<number>;
  settingsAcks: number;
  pingAcks: number;
  closed: boolean;
}

/**
 * A raw h2 client over TLS (ALPN h2) or cleartext: it sends what it is told, ACKs the server's SETTINGS
 * (unless `ackSettings` is false) and records what came back. `closed` resolves when the server closed.
 */
export async function rawH2(
  port: number,
  /** `halfOpen`: keep this side open when the server ends its own (a client that never closes). */
  opts: { tls?: boolean; ackSettings?: boolean; halfOpen?: boolean } = {},
): Promise<{ socket: Socket; seen: Seen; closed: Promise<void>; send(b: Buffer): boolean } & Disposable> {
  // A TLS socket over a TCP socket of ours is half-open as that one is.
  const tcp = netConnect({ port, host: '127.0.0.1', allowHalfOpen: opts.halfOpen ?? false });
  const socket: Socket =
    opts.tls === false ? tcp : tlsConnect({ socket: tcp, ALPNProtocols: ['h2'], rejectUnauthorized: false, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => {
    socket.once(opts.tls === false ? 'connect' : 'secureConnect', () => resolve());
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const seen: Seen = { goaway: undefined, resets: new Map(), responded: new Set(), settingsAcks: 0, pingAcks: 0, closed: false };
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3]!;
      const flags = buf[4]!;
      const stream = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      if (type === FRAME.GOAWAY) seen.goaway = { lastStream: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) };
      else if (type === FRAME.RST_STREAM) seen.resets.set(stream, payload.readUInt32BE(0));
      else if (type === FRAME.HEADERS) seen.responded.add(stream);
      else if (type === FRAME.SETTINGS && flags & FLAG.ACK) seen.settingsAcks++;
      else if (type === FRAME.SETTINGS && opts.ackSettings !== false && !socket.destroyed) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      else if (type === FRAME.PING && flags & FLAG.ACK) seen.pingAcks++;
    }
  });
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      seen.closed = true;
      resolve();
    }),
  );
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  return { socket, seen, closed, send: (b) => socket.write(b), [Symbol.dispose]: () => socket.destroy() };
}

/** Resolves once `cond()` holds, or rejects after `ms`. */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * `clients` TLS h2 clients, one after another, from a child process (h2-resetting-clients.ts): each asks for
 * `streams` responses at once and, as the first bytes of one arrive, resets its TCP connection (RST, as a client
 * that crashes or a load generator that stops mid-run), leaving the proxy with responses in flight on a connection
 * that is gone. A process of their own: clients in the proxy's own event loop never caught it mid-write, and
 * nothing went wrong.
 */
export async function resettingClients(port: number, path: string, clients: number, streams = 5): Promise<void> {
  const script = fileURLToPath(new URL('./h2-resetting-clients.ts', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script, String(port), path, String(clients), String(streams)], {
    timeout: 30_000,
  });
  if (stdout.trim() !== `reset ${clients}`) throw new Error(`the resetting clients said: ${stdout}`);
}

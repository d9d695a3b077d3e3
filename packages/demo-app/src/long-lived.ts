import { once } from 'node:events';
import { type IncomingMessage, type RequestListener, Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer } from 'ws';

/**
 * Two long-lived exchanges for failover drills (demo mode only): a paced download and a WebSocket echo,
 * so that a drill can start them before an event (a director failover, a Redis restart) and check that
 * they finish. Neither touches the session store.
 */

/** Largest `bytes` a download may ask for: 256 MiB. */
export const MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024;
/** `rate` bounds in bytes per second: 1 KiB/s to 1 GiB/s. */
export const MIN_DOWNLOAD_RATE = 1024;
export const MAX_DOWNLOAD_RATE = 1024 * 1024 * 1024;
/** Largest WebSocket message the echo accepts (a bigger one closes the connection with 1009). */
export const MAX_ECHO_PAYLOAD = 64 * 1024;

/** How often the download writes: often enough for a smooth rate, seldom enough to cost nothing. */
const TICK_MS = 100;
/** The body is this line over and over: a client can check every byte without knowing more. */
const PATTERN = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-\n';
/** 64 KiB of whole patterns: every write is a slice of it, starting where the last one stopped in the pattern. */
const BLOCK = Buffer.from(PATTERN.repeat(1024), 'ascii');
const DECIMAL = /^\d{1,10}$/;

/** The body's byte at `offset`, for clients that check what they received. */
export function downloadByteAt(offset: number): number {
  return PATTERN.charCodeAt(offset % PATTERN.length);
}

/**
 * `GET /download?bytes=N&rate=R`: N bytes (Content-Length N) at about R bytes per second, written every
 * 100 ms. Bad parameters are a 400 with a one-line reason. Writing stops when the client goes away: the
 * response's 'close' aborts the pending sleep or 'drain' wait, so no timer outlives the request.
 */
export function download(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET') {
    res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain; charset=utf-8' });
    res.end('method not allowed\n');
    return;
  }
  const query = new URL(req.url ?? '/', 'http://demo').searchParams;
  const bytes = integerParam(query, 'bytes', 0, MAX_DOWNLOAD_BYTES);
  const rate = integerParam(query, 'rate', MIN_DOWNLOAD_RATE, MAX_DOWNLOAD_RATE);
  const problem = [bytes, rate].find((p) => typeof p === 'string');
  if (problem !== undefined) {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`${problem}\n`);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain; charset=us-ascii', 'content-length': String(bytes) });
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  pace(res, bytes as number, rate as number, abort.signal).catch(() => {
    // Aborted (the client went away) or a write failed: the response is already closed, nothing to answer.
    res.destroy();
  });
}

/** The integer in `name`, or why it is not acceptable. */
function integerParam(query: URLSearchParams, name: string, min: number, max: number): number | string {
  const raw = query.get(name);
  const value = raw !== null && DECIMAL.test(raw) ? Number(raw) : Number.NaN;
  return value >= min && value <= max ? value : `'${name}' must be an integer from ${min} to ${max}`;
}

async function pace(res: ServerResponse, bytes: number, rate: number, signal: AbortSignal): Promise<void> {
  const start = performance.now();
  let sent = 0;
  while (sent < bytes) {
    // From the clock, not a count of ticks: late timers (a busy event loop) do not slow the rate down.
    // One tick ahead, so the first bytes leave with the headers.
    const due = Math.min(bytes, Math.floor(((performance.now() - start + TICK_MS) / 1000) * rate));
    while (sent < due) {
      const offset = sent % PATTERN.length;
      const n = Math.min(due - sent, BLOCK.length - offset);
      sent += n;
      // A slow reader: wait for its socket instead of queueing the rest of the body in memory.
      if (!res.write(BLOCK.subarray(offset, offset + n))) await once(res, 'drain', { signal });
    }
    if (sent < bytes) await sleep(TICK_MS, undefined, { signal });
  }
  res.end();
}

/**
 * The WebSocket echo at `/ws` (demo mode only): each text or binary message goes back unchanged. Any other
 * upgrade, or any upgrade outside demo mode, is answered 404 and the socket closed.
 *
 * Returns the WebSocket server (demo mode), whose clients DemoServer#closeAllConnections terminates.
 */
export function attachEcho(server: Server, demo: boolean): WebSocketServer | undefined {
  const wss = demo ? new WebSocketServer({ noServer: true, maxPayload: MAX_ECHO_PAYLOAD }) : undefined;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const path = new URL(req.url ?? '/', 'http://demo').pathname;
    if (wss === undefined || path !== '/ws') {
      // The server's sockets are half-open: end() alone would leave this one to the client to close.
      socket.once('finish', () => socket.destroy());
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      // Without a listener, a protocol error from the client (an oversized message) would crash the process.
      ws.on('error', () => ws.terminate());
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    });
  });
  return wss;
}

/**
 * The demo app's http.Server. Upgraded sockets leave the server's connection list, so node's
 * `closeAllConnections()` would not reach them and `close()` would wait for every open WebSocket to end by
 * itself: this one terminates them too.
 */
export class DemoServer extends Server {
  readonly #webSockets: WebSocketServer | undefined;

  constructor(handler: RequestListener, demo: boolean) {
    super(handler);
    this.#webSockets = attachEcho(this, demo);
  }

  override closeAllConnections(): void {
    for (const ws of this.#webSockets?.clients ?? []) ws.terminate();
    super.closeAllConnections();
  }
}

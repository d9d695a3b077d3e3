/**
 * `k6/ws`: connect(url, params, callback) with the socket's open/message/close/error events, send, close,
 * setTimeout and setInterval. As in k6, connect() blocks the VU and runs the socket's event loop until the socket
 * closes; the socket itself lives on the main thread (`ws`), events come back over the bridge.
 */
import { K6Unsupported } from '../refusal.ts';
import { currentTags, vu } from '../vu-context.ts';

interface Opened {
  id: number;
  status: number;
  headers: Record<string, string>;
  error: string;
}
type Event = { type: 'open' | 'message' | 'close' | 'error'; id: number; data?: string; code?: number };
type Handler = (arg?: unknown) => void;

const EVENTS = new Set(['open', 'message', 'close', 'error']);
const PARAMS = new Set(['headers', 'tags']);

class Socket {
  readonly #id: number;
  readonly handlers = new Map<string, Handler[]>();
  readonly timers: { due: number; fn: () => void; every: number }[] = [];
  closing = false;

  constructor(id: number) {
    this.#id = id;
  }

  on(event: string, handler: Handler): void {
    if (!EVENTS.has(event)) throw new K6Unsupported(`socket.on('${event}')`);
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), handler]);
  }

  send(data: string): void {
    if (typeof data !== 'string') throw new K6Unsupported('socket.send() of non-string data (use sendBinary in k6)');
    vu.bridge.post({ type: 'ws-send', id: this.#id, data });
  }

  close(code?: number): void {
    this.closing = true;
    vu.bridge.post({ type: 'ws-close', id: this.#id, code });
  }

  setTimeout(fn: () => void, ms: number): void {
    this.timers.push({ due: performance.now() + ms, fn, every: 0 });
  }

  setInterval(fn: () => void, ms: number): void {
    if (!(ms > 0)) throw new Error('socket.setInterval: the interval must be > 0 ms');
    this.timers.push({ due: performance.now() + ms, fn, every: ms });
  }

  ping(): never {
    throw new K6Unsupported('socket.ping()');
  }

  sendBinary(): never {
    throw new K6Unsupported('socket.sendBinary()');
  }

  fire(event: string, arg?: unknown): void {
    for (const handler of this.handlers.get(event) ?? []) handler(arg);
  }
}

export function connect(url: string, paramsOrCallback: unknown, maybeCallback?: (socket: Socket) => void) {
  const callback = (typeof paramsOrCallback === 'function' ? paramsOrCallback : maybeCallback) as ((s: Socket) => void) | undefined;
  const params = (typeof paramsOrCallback === 'function' ? {} : (paramsOrCallback ?? {})) as Record<string, unknown>;
  for (const key of Object.keys(params)) if (!PARAMS.has(key)) throw new K6Unsupported(`ws params.${key}`);
  if (!callback) throw new Error('ws.connect: a callback is required');
  const tags = currentTags({ url, ...((params.tags ?? {}) as Record<string, string>) });
  const opened = vu.bridge.call<Opened>({ type: 'ws-open', url, headers: params.headers ?? {}, tags });
  const response = { url, status: opened.status, headers: opened.headers, error: opened.error, body: null };
  if (opened.error) return response;
  const socket = new Socket(opened.id);
  callback(socket);
  socket.fire('open');
  for (;;) {
    const now = performance.now();
    const next = socket.timers.reduce((m, t) => Math.min(m, t.due), Number.POSITIVE_INFINITY);
    const event = vu.bridge.nextEvent(Math.max(0, next - now)) as Event | undefined;
    if (event?.type === 'close') {
      socket.fire('close', event.code);
      return response;
    }
    if (event?.type === 'message') socket.fire('message', event.data);
    else if (event?.type === 'error') socket.fire('error', { error: () => event.data ?? '' });
    for (const timer of [...socket.timers]) {
      if (timer.due > performance.now()) continue;
      if (timer.every > 0) timer.due += timer.every;
      else socket.timers.splice(socket.timers.indexOf(timer), 1);
      // No more timers once the script closed the socket: k6 stops them at close too.
      if (!socket.closing) timer.fn();
    }
  }
}

export default { connect };

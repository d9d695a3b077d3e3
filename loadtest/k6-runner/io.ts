/**
 * The main thread's half of the bridge: performs each VU's HTTP requests (undici, one keep-alive Agent per VU as
 * k6 keeps one transport per VU) and websockets (`ws`), records the built-in metrics, and wakes the VU.
 */
import type { MessagePort } from 'node:worker_threads';
import { Agent, request } from 'undici';
import { WebSocket } from 'ws';
import type { MetricStore, Tags } from './metrics.ts';
import type { WireResponse } from './modules/http.ts';

interface HttpMessage {
  type: 'http';
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  timeoutMs: number;
  tags: Tags;
}
interface WsOpenMessage {
  type: 'ws-open';
  url: string;
  headers: Record<string, string>;
  tags: Tags;
}
type VuMessage =
  | HttpMessage
  | WsOpenMessage
  | { type: 'ws-send'; id: number; data: string }
  | { type: 'ws-close'; id: number; code?: number };

/** k6's error codes for the failures a loopback run meets (https://grafana.com/docs/k6/latest/javascript-api/error-codes/). */
function errorCode(err: unknown): number {
  const e = err as { name?: string; code?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 1050;
  if (code === 'ECONNREFUSED') return 1212;
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 1220;
  return 1000;
}

export interface IoLimits {
  maxRequests: number;
  /** Called once when the request cap is reached: the runner stops the test. */
  onCap: () => void;
}

export class Io {
  readonly #store: MetricStore;
  readonly #limits: IoLimits;
  readonly #agents = new Set<Agent>();
  readonly #sockets = new Map<number, WebSocket>();
  #nextSocket = 1;
  requests = 0;

  constructor(store: MetricStore, limits: IoLimits) {
    this.#store = store;
    this.#limits = limits;
  }

  /** Serves one VU: its request port, event port and wake-up counter. */
  attach(requests: MessagePort, events: MessagePort, signal: Int32Array): () => Promise<void> {
    const agent = new Agent({ connections: 4, keepAliveTimeout: 30_000 });
    this.#agents.add(agent);
    const wake = () => {
      Atomics.add(signal, 0, 1);
      Atomics.notify(signal, 0);
    };
    const reply = (m: unknown) => {
      requests.postMessage(m);
      wake();
    };
    const event = (m: unknown) => {
      events.postMessage(m);
      wake();
    };
    requests.on('message', (m: VuMessage) => {
      switch (m.type) {
        case 'http':
          void this.#http(m, agent).then(reply);
          break;
        case 'ws-open':
          void this.#wsOpen(m, event).then(reply);
          break;
        case 'ws-send':
          this.#sockets.get(m.id)?.send(m.data);
          this.#store.add('ws_msgs_sent', 1, {});
          break;
        case 'ws-close':
          this.#sockets.get(m.id)?.close(m.code ?? 1000);
          break;
      }
    });
    return async () => {
      requests.close();
      events.close();
      this.#agents.delete(agent);
      await agent.destroy();
    };
  }

  async #http(m: HttpMessage, agent: Agent): Promise<WireResponse> {
    if (++this.requests > this.#limits.maxRequests) {
      this.#limits.onCap();
      return {
        status: 0,
        headers: {},
        body: '',
        error: 'request cap reached',
        errorCode: 1000,
        timings: { duration: 0, waiting: 0, receiving: 0 },
      };
    }
    const start = performance.now();
    let wire: WireResponse;
    try {
      const res = await request(m.url, {
        method: m.method as 'GET',
        headers: m.headers,
        body: m.body,
        dispatcher: agent,
        signal: AbortSignal.timeout(m.timeoutMs),
      });
      const headersAt = performance.now();
      const body = await res.body.text();
      const end = performance.now();
      const headers: Record<string, string[]> = {};
      for (const [name, value] of Object.entries(res.headers))
        if (value !== undefined) headers[name] = Array.isArray(value) ? value : [value];
      wire = {
        status: res.statusCode,
        headers,
        body,
        error: '',
        errorCode: 0,
        timings: { duration: end - start, waiting: headersAt - start, receiving: end - headersAt },
      };
    } catch (err) {
      const duration = performance.now() - start;
      wire = {
        status: 0,
        headers: {},
        body: '',
        error: String((err as Error).message),
        errorCode: errorCode(err),
        timings: { duration, waiting: duration, receiving: 0 },
      };
    }
    // k6's default expected statuses: 200–399; anything else (and no response) is a failed request.
    const expected = wire.status >= 200 && wire.status < 400;
    const tags = { ...m.tags, status: String(wire.status), expected_response: String(expected) };
    this.#store.add('http_reqs', 1, tags);
    this.#store.add('http_req_duration', wire.timings.duration, tags);
    this.#store.add('http_req_waiting', wire.timings.waiting, tags);
    this.#store.add('http_req_failed', expected ? 0 : 1, tags);
    return wire;
  }

  #wsOpen(m: WsOpenMessage, event: (e: unknown) => void): Promise<unknown> {
    const id = this.#nextSocket++;
    const start = performance.now();
    this.#store.add('ws_sessions', 1, m.tags);
    return new Promise((resolve) => {
      const ws = new WebSocket(m.url, { headers: m.headers, handshakeTimeout: 60_000 });
      let opened = false;
      ws.on('unexpected-response', (_req, res) => {
        resolve({ id, status: res.statusCode ?? 0, headers: {}, error: `websocket: bad handshake (status ${res.statusCode})` });
        ws.terminate();
      });
      ws.on('upgrade', (res) => {
        this.#store.add('ws_connecting', performance.now() - start, m.tags);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) headers[k] = String(v);
        opened = true;
        this.#sockets.set(id, ws);
        resolve({ id, status: 101, headers, error: '' });
      });
      ws.on('message', (data) => {
        this.#store.add('ws_msgs_received', 1, m.tags);
        event({ type: 'message', id, data: data.toString() });
      });
      ws.on('error', (err) => {
        if (!opened) resolve({ id, status: 0, headers: {}, error: err.message });
        else event({ type: 'error', id, data: err.message });
      });
      ws.on('close', (code) => {
        if (!opened) return;
        this.#sockets.delete(id);
        this.#store.add('ws_session_duration', performance.now() - start, m.tags);
        event({ type: 'close', id, code });
      });
    });
  }

  async close(): Promise<void> {
    for (const ws of this.#sockets.values()) ws.terminate();
    await Promise.all([...this.#agents].map((a) => a.destroy()));
  }
}

/**
 * The state of one virtual user inside its worker thread, shared by the runner's k6 modules: who it is, the tags
 * of the current scenario and group, its cookie jar, and the synchronous bridge to the main thread.
 *
 * k6 scripts are synchronous (`http.get` returns the response, `sleep` blocks), so each VU runs in its own worker
 * thread and blocks in `Atomics.wait` while the main thread does the I/O: the script runs as written, without
 * being rewritten into async code.
 */
import { type MessagePort, parentPort, receiveMessageOnPort } from 'node:worker_threads';
import type { CookieJar } from './cookie-jar.ts';
import type { Tags } from './metrics.ts';

/** Blocking calls to the main thread: post on a port, wait on a shared counter the main thread bumps on every reply. */
export class Bridge {
  readonly #signal: Int32Array;
  readonly #requests: MessagePort;
  readonly #events: MessagePort;

  constructor(signal: Int32Array, requests: MessagePort, events: MessagePort) {
    this.#signal = signal;
    this.#requests = requests;
    this.#events = events;
  }

  /** Sends a request and blocks until its reply. */
  call<T>(message: unknown): T {
    this.#requests.postMessage(message);
    return this.#next(this.#requests, Number.POSITIVE_INFINITY) as T;
  }

  /** Sends without waiting (websocket send/close). */
  post(message: unknown): void {
    this.#requests.postMessage(message);
  }

  /** The next websocket event, or undefined after `timeoutMs`. */
  nextEvent(timeoutMs: number): unknown {
    return this.#next(this.#events, timeoutMs);
  }

  #next(port: MessagePort, timeoutMs: number): unknown {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      // Read the counter before looking at the port: a reply posted in between bumps it, so the wait returns.
      const seen = Atomics.load(this.#signal, 0);
      const received = receiveMessageOnPort(port);
      if (received) return received.message;
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      Atomics.wait(this.#signal, 0, seen, left === Number.POSITIVE_INFINITY ? undefined : left);
    }
  }
}

export interface VuState {
  id: number;
  iter: number;
  env: Record<string, string>;
  scenario: string;
  /** `options.tags` + the scenario's tags + `scenario`. */
  tags: Tags;
  /** k6's group path: '' at the root, `::outer::inner` inside groups. */
  groupPath: string;
  jar: CookieJar;
  maxRedirects: number;
  bridge: Bridge;
}

export const vu = {} as VuState;

/** Sends a metric sample to the main thread (asynchronous: no reply needed). */
export function emit(metric: string, value: number, tags: Tags): void {
  parentPort!.postMessage({ type: 'metric', metric, value, tags });
}

/** The tags every sample of the current moment carries. */
export function currentTags(extra: Tags = {}): Tags {
  return { ...vu.tags, group: vu.groupPath, ...extra };
}

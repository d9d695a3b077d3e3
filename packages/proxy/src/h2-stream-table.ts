import type { Http2Session } from 'node:http2';
import { Duplex } from 'node:stream';
import { isMap } from 'node:util/types';

/**
 * The table an h2 session keeps its open streams in, in place of node's own `Map` (`session[kState].streams` in
 * lib/internal/http2/core.js; node reads it with get/set/delete/size/forEach).
 *
 * Why: a long-lived V8 `Map` through which short-lived objects pass keeps every one of them alive until the next
 * mark-compact once it holds five or more at a time. Its hash table is rebuilt every few insertions (deleted
 * entries are only reclaimed by a rebuild, and a table of 4 grows to 8 past four entries); the table it replaces
 * keeps its entries and a link to the new table, and once a table has been promoted to the old generation that
 * stale table is a root for every scavenge (its slots are in the remembered set, dead or not): it keeps the next
 * table alive, that one the next, and all of them the streams they ever held. Measured (loadtest/README.md,
 * "What h2 leaves to the old generation"): a bare node:http2 server promoted 49–66 bytes per request with up to
 * four streams per connection and 1 045–1 107 with five or more, every ServerHttp2Stream with its state, header
 * objects and handles; a plain script churning a Map of five entries promoted 1.5 GB in 3 s, the same script with
 * this table 0.08 MB. Those objects are what made h2's mark-compacts frequent and long (10–27 ms each, with the
 * external strings of node's header values and the ArrayBuffers they hold to finalise): h2's p99 and peak RSS.
 *
 * This table is two arrays that only grow (to the most streams the session ever had open at once, which
 * `http2_max_concurrent_streams` bounds) and whose slots are cleared on delete: nothing stale is left to root
 * anything. Lookups scan, which for the few dozen streams a session has open costs less than hashing.
 */
export class StreamTable<V> {
  readonly #ids: (number | undefined)[] = [];
  readonly #values: (V | undefined)[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): V | undefined {
    const i = this.#ids.indexOf(id);
    return i < 0 ? undefined : this.#values[i];
  }

  has(id: number): boolean {
    return this.#ids.indexOf(id) >= 0;
  }

  set(id: number, value: V): this {
    let i = this.#ids.indexOf(id);
    if (i < 0) {
      i = this.#ids.indexOf(undefined);
      if (i < 0) i = this.#ids.length;
      this.#ids[i] = id;
      this.#size++;
    }
    this.#values[i] = value;
    return this;
  }

  delete(id: number): boolean {
    const i = this.#ids.indexOf(id);
    if (i < 0) return false;
    this.#ids[i] = undefined;
    this.#values[i] = undefined;
    this.#size--;
    return true;
  }

  clear(): void {
    this.#ids.fill(undefined);
    this.#values.fill(undefined);
    this.#size = 0;
  }

  /** Over the entries as they were when called: node destroys streams from here, which deletes them. */
  forEach(fn: (value: V, id: number, table: this) => void): void {
    for (const [id, value] of this.entries()) fn(value, id, this);
  }

  /** A snapshot, in slot order (not insertion order: node relies on neither). */
  entries(): IterableIterator<[number, V]> {
    const out: [number, V][] = [];
    for (let i = 0; i < this.#ids.length; i++) {
      const id = this.#ids[i];
      if (id !== undefined) out.push([id, this.#values[i] as V]);
    }
    return out[Symbol.iterator]();
  }

  keys(): IterableIterator<number> {
    return Array.from(this.entries(), ([id]) => id)[Symbol.iterator]();
  }

  values(): IterableIterator<V> {
    return Array.from(this.entries(), ([, v]) => v)[Symbol.iterator]();
  }

  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entries();
  }
}

/** node's key for a session's internal state (`kState`, described 'state'), once found. */
let stateKey: symbol | undefined;

/**
 * Gives `session` a StreamTable for node's stream Map, before its first stream. False (and nothing changed) when
 * node's session has no such Map, or it already holds streams: then node's own Map stays.
 */
export function useStreamTable(session: Http2Session): boolean {
  stateKey ??= Object.getOwnPropertySymbols(session).find((k) => k.description === 'state');
  const state = stateKey && (session as unknown as Record<symbol, { streams?: unknown } | undefined>)[stateKey];
  // isMap: node's is a SafeMap (its primordials' Map, with a prototype of its own: not `instanceof Map`).
  if (!isMap(state?.streams) || state.streams.size !== 0) return false;
  state.streams = new StreamTable();
  return true;
}

/** node's table of `session`'s open streams (its Map, or the StreamTable useStreamTable put there). */
function streamsOf(
  session: Http2Session,
): { readonly size: number; forEach(fn: (s: { writableLength?: number }) => void): void } | undefined {
  stateKey ??= Object.getOwnPropertySymbols(session).find((k) => k.description === 'state');
  const streams = stateKey && (session as unknown as Record<symbol, { streams?: unknown } | undefined>)[stateKey]?.streams;
  return isMap(streams) || streams instanceof StreamTable ? (streams as ReturnType<typeof streamsOf>) : undefined;
}

/** How many streams node counts open on `session`; 0 once node has cleared its table. */
export function openStreams(session: Http2Session): number {
  return streamsOf(session)?.size ?? 0;
}

/** Whether a stream of `session` has response bytes its writable side has not passed on yet. */
export function outputWaiting(session: Http2Session): boolean {
  let waiting = false;
  streamsOf(session)?.forEach((s) => {
    if ((s.writableLength ?? 0) > 0) waiting = true;
  });
  return waiting;
}

/** node's key for a session's socket (`kSocket`, described 'socket'), once found. */
let socketKey: symbol | undefined;

/**
 * The socket `session` runs on (a TLSSocket, or the TCP socket of h2c): `session.socket` is a proxy that refuses
 * `destroy()`. Undefined when node keeps it elsewhere.
 */
export function sessionSocket(session: Http2Session): Duplex | undefined {
  socketKey ??= Object.getOwnPropertySymbols(session).find((k) => k.description === 'socket');
  const socket = socketKey && (session as unknown as Record<symbol, unknown>)[socketKey];
  return socket instanceof Duplex ? socket : undefined;
}

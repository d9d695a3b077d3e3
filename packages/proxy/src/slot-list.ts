/**
 * A list of the live items of a kind (exchanges in flight, open connections): an array with swap-remove, each
 * item knowing its slot, not a Set or a Map. A long-lived Set that gains and loses an entry per request or
 * connection rehashes into a new table every few dozen changes, and V8 links each old table to its successor (for
 * live iterators). Once a mark-compact has moved the current table to the old generation, every successor is kept
 * alive by its dead predecessor until it is old too, with the items it holds: measured under load, every scavenge
 * then promoted ~700 KB instead of ~5 KB, a mark-compact followed every second, and the process never left that
 * state (loadtest/README.md; node's own per-session Map of h2 streams did the same, h2-stream-table.ts). An
 * array's storage only changes when the peak count grows, and a removed item's slot is overwritten.
 */
export class SlotList<T extends { slot: number }> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(item: T): void {
    item.slot = this.#items.length;
    this.#items.push(item);
  }

  delete(item: T): void {
    const i = item.slot;
    if (i < 0) return;
    item.slot = -1;
    const last = this.#items.pop()!;
    if (last === item) return;
    this.#items[i] = last;
    last.slot = i;
  }

  /** Over a copy: `fn` may remove items (finish an exchange, close a connection) while it runs. */
  forEach(fn: (item: T) => void): void {
    for (const item of this.#items.slice()) fn(item);
  }
}

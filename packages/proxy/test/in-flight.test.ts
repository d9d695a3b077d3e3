import { describe, expect, it } from 'vitest';
import { type Exchange, InFlight } from '../src/exchange.ts';

/** InFlight only reads and writes an exchange's `slot`. */
const exchange = (): Exchange => ({ slot: -1 }) as Exchange;

function members(set: InFlight): Exchange[] {
  const seen: Exchange[] = [];
  set.forEach((ex) => {
    seen.push(ex);
  });
  return seen;
}

describe('InFlight', () => {
  it('adds, removes from the middle by swapping the last in, and ignores a second delete', () => {
    const set = new InFlight();
    const [a, b, c] = [exchange(), exchange(), exchange()];
    for (const ex of [a, b, c]) set.add(ex);
    set.delete(a);
    expect([set.size, members(set), c.slot, a.slot]).toEqual([2, [c, b], 0, -1]);
    set.delete(a);
    set.delete(b);
    set.delete(c);
    expect([set.size, members(set)]).toEqual([0, []]);
  });

  it('forEach visits every member even when the callback removes them', () => {
    const set = new InFlight();
    const all = [exchange(), exchange(), exchange(), exchange()];
    for (const ex of all) set.add(ex);
    const visited: Exchange[] = [];
    set.forEach((ex) => {
      visited.push(ex);
      set.delete(ex);
    });
    expect([visited, set.size]).toEqual([all, 0]);
  });
});

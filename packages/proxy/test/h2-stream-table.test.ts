import { once } from 'node:events';
import { type ClientHttp2Stream, createServer, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { StreamTable, useStreamTable } from '../src/h2-stream-table.ts';
import { Http2Sessions } from '../src/http2-server.ts';
import { h2client, until } from './h2-helpers.ts';

describe('StreamTable', () => {
  it('gets, sets, replaces and deletes by id, reusing freed slots', () => {
    const t = new StreamTable<string>();
    expect(t.size).toBe(0);
    expect(t.set(1, 'a').set(3, 'b').set(5, 'c')).toBe(t);
    expect([t.get(1), t.get(3), t.get(5), t.get(7)]).toEqual(['a', 'b', 'c', undefined]);
    t.set(3, 'B');
    expect(t.size).toBe(3);
    expect(t.get(3)).toBe('B');
    expect(t.delete(3)).toBe(true);
    expect(t.delete(3)).toBe(false);
    expect(t.has(3)).toBe(false);
    expect(t.get(3)).toBeUndefined();
    t.set(7, 'd');
    expect(t.size).toBe(3);
    expect([...t.keys()].sort()).toEqual([1, 5, 7]);
    expect([...t.values()].sort()).toEqual(['a', 'c', 'd']);
    expect(new Map(t.entries())).toEqual(
      new Map([
        [1, 'a'],
        [5, 'c'],
        [7, 'd'],
      ]),
    );
    t.clear();
    expect(t.size).toBe(0);
    expect([...t]).toEqual([]);
  });

  it('forEach visits the entries as they were: deleting during it (node destroys streams from there) skips none', () => {
    const t = new StreamTable<number>();
    for (let id = 1; id <= 11; id += 2) t.set(id, id * 10);
    const seen: number[] = [];
    t.forEach((v, id, table) => {
      seen.push(v);
      table.delete(id);
    });
    expect(seen.sort((a, b) => a - b)).toEqual([10, 30, 50, 70, 90, 110]);
    expect(t.size).toBe(0);
  });
});

/** A cleartext h2 server whose sessions go through Http2Sessions.add, as proxy-server.ts's do. */
async function h2Server(onStream: (s: ServerHttp2Stream) => void) {
  const sessions = new Http2Sessions(60_000, 65536);
  const seen: Http2Session[] = [];
  const server = createServer();
  server.on('session', (s) => {
    seen.push(s);
    sessions.add(s);
  });
  server.on('stream', onStream);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    [Symbol.asyncDispose]: async () => {
      sessions.destroyAll();
      await new Promise((r) => server.close(r));
    },
  };
}

/** node's table of a session's streams (lib/internal/http2/core.js `session[kState].streams`). */
function streamsOf(session: Http2Session): unknown {
  const key = Object.getOwnPropertySymbols(session).find((k) => k.description === 'state');
  return key && (session as unknown as Record<symbol, { streams?: unknown }>)[key]?.streams;
}

function response(req: ClientHttp2Stream): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let body = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
  });
}

describe('useStreamTable on node:http2 sessions (Http2Sessions.add)', () => {
  it("replaces node's Map before the first stream, and 40 concurrent streams of one session are each answered", async () => {
    let open = 0;
    let mostOpen = 0;
    const held: ServerHttp2Stream[] = [];
    // Every stream is held open until all 40 arrived: the table holds 40 at once, more than node's Map of 4 did.
    await using srv = await h2Server((s) => {
      held.push(s);
      mostOpen = Math.max(mostOpen, ++open);
      s.on('close', () => open--);
      if (held.length === 40)
        for (const h of held) {
          h.respond({ ':status': 200 });
          h.end(`stream ${h.id}`);
        }
    });
    await using client = h2client(srv.url);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => response(client.request({ ':path': `/${i}` }))));
    expect(answers.every((a) => a.status === 200 && /^stream \d+$/.test(a.body))).toBe(true);
    expect(new Set(answers.map((a) => a.body)).size).toBe(40);
    expect(mostOpen).toBe(40);
    expect(srv.seen).toHaveLength(1);
    // If node renames its state key or stops keeping a Map there, this fails: h2-stream-table.ts needs the new shape.
    expect(streamsOf(srv.seen[0]!)).toBeInstanceOf(StreamTable);
    await until(() => (streamsOf(srv.seen[0]!) as StreamTable<unknown>).size === 0);
  });

  it("a session destroyed with streams open destroys them all (node's forEach over the table)", async () => {
    const held: ServerHttp2Stream[] = [];
    await using srv = await h2Server((s) => {
      held.push(s);
      s.on('error', () => {});
    });
    await using client = h2client(srv.url);
    const reqs = Array.from({ length: 8 }, (_, i) => client.request({ ':path': `/${i}` }));
    const closed = reqs.map((r) => new Promise<void>((resolve) => r.on('close', () => resolve())));
    for (const r of reqs) r.on('error', () => {});
    await until(() => held.length === 8);
    expect((streamsOf(srv.seen[0]!) as StreamTable<unknown>).size).toBe(8);
    srv.seen[0]!.destroy();
    await Promise.all(closed);
    expect(held.every((s) => s.destroyed)).toBe(true);
    expect((streamsOf(srv.seen[0]!) as StreamTable<unknown>).size).toBe(0);
  });

  it('leaves a session that has no stream Map, or one already holding streams, as it is', async () => {
    expect(useStreamTable(Object.create(null) as Http2Session)).toBe(false);
    await using srv = await h2Server((s) => s.close());
    await using _client = h2client(srv.url);
    await until(() => srv.seen.length === 1);
    expect(useStreamTable(srv.seen[0]!)).toBe(false); // a StreamTable already
    const key = Object.getOwnPropertySymbols(srv.seen[0]!).find((k) => k.description === 'state')!;
    const busy = new Map([[1, {}]]);
    const session = { [key]: { streams: busy } } as unknown as Http2Session;
    expect(useStreamTable(session)).toBe(false);
    expect((session as unknown as Record<symbol, { streams: unknown }>)[key]!.streams).toBe(busy);
  });
});

import { describe, expect, it } from 'vitest';
import { ATTEMPT_CHANNEL, type AttemptEvent, REQUEST_CHANNEL, type RequestEvent } from '../src/index.ts';
import { requestIdOf } from '../src/request-id.ts';
import { collect, fetchText, named, server, startTestProxy, startUpstream } from './helpers.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request id', () => {
  it('keeps a sane client id and replaces anything else', () => {
    const gen = () => 'new';
    expect(requestIdOf('abc-123_XYZ.~!', gen)).toBe('abc-123_XYZ.~!');
    expect(requestIdOf('x'.repeat(200), gen)).toBe('x'.repeat(200));
    for (const bad of [undefined, '', 'x'.repeat(201), 'has space', 'tab\there', 'é', ['a', 'b']])
      expect(requestIdOf(bad, gen)).toBe('new');
    expect(requestIdOf(undefined)).toMatch(UUID);
  });

  it('is forwarded upstream, returned to the client (replacing the upstream’s) and on both channels', async () => {
    await using up = await startUpstream((req, res) => {
      res.setHeader('x-request-id', 'upstream-made-this');
      named('a')(req, res);
    });
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    using requests = collect<RequestEvent>(REQUEST_CHANNEL);
    using attempts = collect<AttemptEvent>(ATTEMPT_CHANNEL);
    const kept = await fetchText(`${p.url}/x?q=1`, { headers: { 'x-request-id': 'client-id-1', 'user-agent': 'ua/1' } });
    expect(kept.headers['x-request-id']).toBe('client-id-1');
    expect(up.seen[0]!.headers['x-request-id']).toBe('client-id-1');
    const made = await fetchText(`${p.url}/`, { headers: { 'x-request-id': 'bad id' } });
    const id = made.headers['x-request-id'] as string;
    expect(id).toMatch(UUID);
    expect(up.seen[1]!.headers['x-request-id']).toBe(id);
    expect(up.seen[1]!.rawHeaders.filter((h) => h.toLowerCase() === 'x-request-id')).toHaveLength(1);
    expect(requests.map((e) => e.requestId)).toEqual(['client-id-1', id]);
    expect(attempts.map((e) => e.requestId)).toEqual(['client-id-1', id]);
    const e = requests[0]!;
    expect(e).toMatchObject({
      method: 'GET',
      url: '/x?q=1',
      path: '/x',
      httpVersion: '1.1',
      clientAddress: '127.0.0.1',
      peerAddress: '127.0.0.1',
      userAgent: 'ua/1',
      pool: 'app',
      upstream: up.address,
      upstreams: [up.address],
      status: 200,
      bytesSent: 1,
      bytesReceived: 0,
      attempts: 1,
      aborted: false,
      upgraded: false,
    });
    expect(e.time).toBeGreaterThan(Date.now() - 60_000);
    expect(e.upstreamDurationMs).toBeGreaterThanOrEqual(0);
    expect(e.durationMs).toBeGreaterThanOrEqual(e.upstreamDurationMs);
  });

  it('error answers carry the id too, and every tried server is listed', async () => {
    const gone = await startUpstream(named('x'));
    await gone[Symbol.asyncDispose]();
    await using ok = await startUpstream(named('ok'));
    await using p = await startTestProxy({ pools: { app: { algorithm: 'round_robin', servers: [server(gone), server(ok)] } } }, () => 0);
    using requests = collect<RequestEvent>(REQUEST_CHANNEL);
    const r = await fetchText(`${p.url}/`, { headers: { 'x-request-id': 'r1' } });
    expect([r.status, r.body]).toEqual([200, 'ok']);
    expect(requests[0]!.upstreams).toEqual([gone.address, ok.address]);
    expect(requests[0]!.attempts).toBe(2);
    await using only = await startTestProxy({ routes: [{ host: 'a.test', pool: 'app' }], pools: { app: { servers: [server(ok)] } } });
    const miss = await fetchText(`${only.url}/`, { headers: { 'x-request-id': 'r2' } });
    expect([miss.status, miss.headers['x-request-id']]).toEqual([404, 'r2']);
    expect(requests.at(-1)).toMatchObject({ requestId: 'r2', status: 404, error: 'TG_PROXY_NO_ROUTE', bytesSent: miss.body.length });
  });
});

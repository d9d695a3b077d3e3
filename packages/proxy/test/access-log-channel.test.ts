import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAccessLog } from '../src/index.ts';
import { fetchText, server, startTestProxy, startUpstream } from './helpers.ts';

describe('access log', () => {
  it('writes one JSON line per request with the documented fields', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.end('hello');
    });
    await using p = await startTestProxy({ routes: [{ path: '/app', pool: 'app' }], pools: { app: { servers: [server(up)] } } });
    const lines: string[] = [];
    await using _log = startAccessLog({ destination: { write: (l: string) => lines.push(l) } });
    await fetchText(`${p.url}/app/x?y=1`, { headers: { 'x-request-id': 'req-1', 'user-agent': 'ua/1' } });
    await fetchText(`${p.url}/nope`, { method: 'POST', body: 'abc', headers: { 'x-request-id': 'req-2' } });
    expect(lines.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1)).toBe(true);
    const [a, b] = lines.map((l) => JSON.parse(l));
    expect(a).toMatchObject({
      request_id: 'req-1',
      client: '127.0.0.1',
      method: 'GET',
      host: `127.0.0.1:${p.proxy.addresses()[0]!.port}`,
      path: '/app/x?y=1',
      status: 200,
      bytes: 5,
      pool: 'app',
      upstream: up.address,
      upstreams: [up.address],
      attempts: 1,
      user_agent: 'ua/1',
      aborted: false,
    });
    expect(Date.parse(a.time)).toBeGreaterThan(Date.now() - 60_000);
    expect(a.duration_ms).toBeGreaterThanOrEqual(a.upstream_ms);
    expect(b).toMatchObject({ request_id: 'req-2', method: 'POST', path: '/nope', status: 404, error: 'TG_PROXY_NO_ROUTE', attempts: 0 });
    expect(lines).toHaveLength(2);
  });

  it('writes through pino’s asynchronous destination to an fd and flushes every line on close()', async () => {
    await using up = await startUpstream((_req, res) => res.end('x'));
    await using p = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const dir = mkdtempSync(join(tmpdir(), 'tg-access-'));
    try {
      const file = join(dir, 'access.log');
      const fd = openSync(file, 'a');
      const log = startAccessLog({ fd });
      await Promise.all(Array.from({ length: 50 }, (_, i) => fetchText(`${p.url}/${i}`, { headers: { 'x-request-id': `r${i}` } })));
      await log.close();
      const ids = readFileSync(file, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).request_id)
        .sort();
      expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => `r${i}`).sort());
      expect(log.dropped()).toBe(0);
      expect(() => closeSync(fd)).toThrow(); // the log closed its fd
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

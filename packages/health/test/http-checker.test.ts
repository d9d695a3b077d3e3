import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { HttpChecker, type HttpCheckSpec } from '../src/index.ts';
import { closedPort, httpServer, httpsServer } from './helpers.ts';

const local = (port: number) => ({ host: '127.0.0.1', port });

async function checkOnce(spec: HttpCheckSpec, port: number, timeoutMs = 2000, signal?: AbortSignal) {
  const checker = new HttpChecker(spec);
  try {
    return await checker.check(local(port), timeoutMs, signal);
  } finally {
    await checker.close();
  }
}

describe('HttpChecker', () => {
  it('is ok on 200 and sends GET to the path', async () => {
    const seen: string[] = [];
    await using srv = await httpServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.host} ${req.headers.connection}`);
      res.end('fine');
    });
    const r = await checkOnce({ kind: 'http', path: '/healthz?x=1' }, srv.port);
    expect(r).toMatchObject({ ok: true, detail: 'HTTP 200' });
    expect(seen).toEqual([`GET /healthz?x=1 127.0.0.1:${srv.port} close`]);
  });

  it('sends a path with a space or non-ASCII percent-encoded, as a URL', async () => {
    const seen: string[] = [];
    await using srv = await httpServer((req, res) => {
      seen.push(req.url ?? '');
      res.end('fine');
    });
    const r = await checkOnce({ kind: 'http', path: '/health check/é?q=a b' }, srv.port);
    expect(r).toMatchObject({ ok: true, detail: 'HTTP 200' });
    expect(seen).toEqual(['/health%20check/%C3%A9?q=a%20b']);
  });

  it('checks an IPv6 target', async () => {
    const server = createServer((_req, res) => res.end());
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '::1', () => resolve()));
    try {
      const checker = new HttpChecker({ kind: 'http', path: '/' });
      const r = await checker.check({ host: '::1', port: (server.address() as AddressInfo).port }, 2000);
      await checker.close();
      expect(r).toMatchObject({ ok: true, detail: 'HTTP 200' });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('fails on 500 with the default range', async () => {
    await using srv = await httpServer((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const r = await checkOnce({ kind: 'http', path: '/' }, srv.port);
    expect(r).toMatchObject({ ok: false, detail: 'HTTP 500 not in 200-399' });
  });

  it('judges the status by the expected ranges', async () => {
    await using srv = await httpServer((req, res) => {
      res.statusCode = Number(req.url?.slice(1));
      res.end();
    });
    const spec = (path: string): HttpCheckSpec => ({
      kind: 'http',
      path,
      expectStatus: [
        [200, 200],
        [401, 403],
      ],
    });
    const results = await Promise.all(['/200', '/204', '/401', '/403', '/404', '/302'].map((p) => checkOnce(spec(p), srv.port)));
    expect(results.map((r) => r.ok)).toEqual([true, false, true, true, false, false]);
  });

  it('sends the configured Host header and extra headers', async () => {
    let host: string | undefined;
    let token: string | string[] | undefined;
    await using srv = await httpServer((req, res) => {
      host = req.headers.host;
      token = req.headers['x-check-token'];
      res.end();
    });
    const r = await checkOnce({ kind: 'http', path: '/', host: 'app.example', headers: { 'x-check-token': 't0k' } }, srv.port);
    expect(r.ok).toBe(true);
    expect([host, token]).toEqual(['app.example', 't0k']);
  });

  it('matches the body by substring and by regex', async () => {
    await using srv = await httpServer((_req, res) => res.end('{"status":"UP","db":"ok"}'));
    const cases: [string | RegExp, boolean][] = [
      ['"status":"UP"', true],
      ['"status":"DOWN"', false],
      [/"db":"(ok|degraded)"/, true],
      [/"db":"down"/g, false],
    ];
    for (const [bodyMatch, ok] of cases) {
      const r = await checkOnce({ kind: 'http', path: '/', bodyMatch }, srv.port);
      expect(r.ok, String(bodyMatch)).toBe(ok);
      expect(r.detail).toContain(ok ? 'body matches' : 'body does not match');
    }
  });

  it('a global regex matches on every check, not every other one', async () => {
    await using srv = await httpServer((_req, res) => res.end('alive'));
    const checker = new HttpChecker({ kind: 'http', path: '/', bodyMatch: /alive/g });
    try {
      const results = [];
      for (let i = 0; i < 3; i++) results.push((await checker.check(local(srv.port), 2000)).ok);
      expect(results).toEqual([true, true, true]);
    } finally {
      await checker.close();
    }
  });

  it('reads at most maxBodyBytes: a match beyond it fails, and an endless body does not hang the check', async () => {
    await using srv = await httpServer((req, res) => {
      if (req.url === '/endless') {
        const chunk = Buffer.alloc(16 * 1024, 'x');
        const pump = () => {
          while (res.write(chunk)) {}
        };
        res.on('drain', pump);
        pump();
        return;
      }
      res.end(`${'x'.repeat(100)}MARKER`);
    });
    expect((await checkOnce({ kind: 'http', path: '/', bodyMatch: 'MARKER', maxBodyBytes: 100 }, srv.port)).ok).toBe(false);
    expect((await checkOnce({ kind: 'http', path: '/', bodyMatch: 'MARKER', maxBodyBytes: 106 }, srv.port)).ok).toBe(true);
    const endless = await checkOnce({ kind: 'http', path: '/endless', bodyMatch: 'MARKER' }, srv.port, 5000);
    expect(endless).toMatchObject({ ok: false, detail: expect.stringContaining('body does not match') });
  });

  it('fails with a timeout when the server never answers', async () => {
    await using srv = await httpServer(() => {});
    const r = await checkOnce({ kind: 'http', path: '/' }, srv.port, 100);
    expect(r).toMatchObject({ ok: false, detail: 'timeout after 100 ms' });
  });

  it('fails with a timeout when the body stalls after the headers', async () => {
    await using srv = await httpServer((_req, res) => {
      res.writeHead(200);
      res.write('partial');
    });
    const r = await checkOnce({ kind: 'http', path: '/', bodyMatch: 'never' }, srv.port, 100);
    expect(r).toMatchObject({ ok: false, detail: 'timeout after 100 ms' });
  });

  it('fails as aborted when the caller aborts', async () => {
    await using srv = await httpServer(() => {});
    const ac = new AbortController();
    const pending = checkOnce({ kind: 'http', path: '/' }, srv.port, 10_000, ac.signal);
    setTimeout(() => ac.abort(), 20);
    expect(await pending).toMatchObject({ ok: false, detail: 'aborted' });
  });

  it('fails with the connection error on a closed port', async () => {
    const r = await checkOnce({ kind: 'http', path: '/' }, await closedPort());
    expect(r.ok).toBe(false);
    expect(r.detail).toContain('ECONNREFUSED');
  });

  it('checks https against a self-signed certificate only when told not to verify it', async () => {
    await using srv = await httpsServer((_req, res) => res.end('tls ok'));
    const lax = await checkOnce({ kind: 'https', path: '/', rejectUnauthorized: false, bodyMatch: 'tls ok' }, srv.port);
    expect(lax).toMatchObject({ ok: true, detail: 'HTTP 200, body matches' });
    const strict = await checkOnce({ kind: 'https', path: '/' }, srv.port);
    expect(strict.ok).toBe(false);
    expect(strict.detail).toMatch(/self[- ]signed|certificate/i);
  });
});

import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { configDir, proxyYaml, startProxyProc, startUpstream, until } from './proxy-ops-helpers.ts';

/**
 * `tiergate proxy` (workers: 1) run under `prlimit --nofile=N:N` (util-linux), so the descriptors run out
 * after a few hundred idle client connections, opened here on loopback and bounded in number.
 */
const NOFILE = 200;
const CONNECTIONS = 300;

/** Opens `n` idle TCP connections to `url`'s port; resolves once each is connected or refused. */
async function openIdle(url: string, n: number): Promise<Socket[]> {
  const { hostname, port } = new URL(url);
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve) => {
          const s = connect(Number(port), hostname);
          s.on('error', () => {}); // connections the proxy closes at accept are reset
          s.once('connect', () => resolve(s));
          s.once('close', () => resolve(s));
        }),
    ),
  );
}

const get = async (url: string) => {
  const r = await request(`${url}/`, { reset: true });
  return { status: r.statusCode, body: await r.body.text() };
};

/** The status line of one request on an already open connection (raw, so it is the connection the proxy admitted). */
function requestOn(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) resolve(got.split('\r\n')[0]!);
    });
    s.once('close', () => resolve(got.split('\r\n')[0] || 'closed'));
    s.write('GET / HTTP/1.1\r\nhost: t\r\n\r\n');
  });
}

describe('tiergate proxy when idle clients hold more connections than it has file descriptors', () => {
  for (const [name, extra, expected] of [
    // The default: node closes connections beyond (200 - 128 reserved) / 2 = 36 right after accept,
    // so the process keeps descriptors for upstream connections and the admin listener.
    ['max_connections: auto (the default)', '', 'HTTP/1.1 200 OK'],
    // Unlimited: the idle clients take every descriptor; the request's upstream connect gets EMFILE.
    ['max_connections: 0 (unlimited)', '  limits: { max_connections: 0 }\n', 'HTTP/1.1 502 Bad Gateway'],
  ] as const)
    it(`${name}: a request on an admitted connection gets ${expected.slice(9)}; the process stays up`, async () => {
      await using up = await startUpstream('A');
      using cfg = configDir(proxyYaml({ workers: 1, servers: [up.address], extra }));
      await using p = await startProxyProc(cfg.file, 30_000, { wrap: ['prlimit', `--nofile=${NOFILE}:${NOFILE}`] });
      const line = () =>
        p
          .stderr()
          .split('\n')
          .find((l) => l.includes('"proxy listening"'));
      await until(() => line() !== undefined, 5_000, 'the proxy listening log line'); // stderr may trail stdout
      const listening = JSON.parse(line()!);
      expect(listening.maxConnections).toBe(extra ? null : 36); // JSON has no Infinity

      const sockets = await openIdle(p.url, CONNECTIONS);
      try {
        // Wait until the proxy has dealt with all of them: with auto it keeps at most 36, unlimited it runs out
        // of descriptors first (libuv then closes what it cannot accept). The first connection was admitted.
        const kept = extra ? NOFILE : 36;
        const closed = () => sockets.filter((s) => s.destroyed || s.readyState !== 'open').length;
        await until(() => closed() >= CONNECTIONS - kept, 10_000, 'the excess connections closed');
        expect(await requestOn(sockets[0]!)).toBe(expected);
      } finally {
        for (const s of sockets) s.destroy();
      }
      // Once the idle clients are gone, the same process serves again.
      await until(async () => (await get(p.url).catch(() => undefined))?.status === 200, 10_000, 'a 200 after the clients left');
      expect(p.child.exitCode).toBeNull();
    });
});

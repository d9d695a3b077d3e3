import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createSecureServer } from 'node:http2';
import { createServer as createHttpsServer, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGrpc } from './grpc-helpers.ts';
import { fetchText, proxySection, rawExchange, startTestProxy } from './helpers.ts';
import { type CertDir, certDir } from './tls-certs.ts';

/**
 * `pools.X.protocol: https`: HTTP/1.1 over TLS to the servers (nginx `proxy_pass https://`), with the same
 * `tls_*` settings as `h2`, and a client certificate towards the servers (nginx `proxy_ssl_certificate`).
 */

let certs: CertDir;

beforeAll(async () => {
  certs = certDir();
  await certs.ca('ca', 'Test CA');
  await certs.leaf('app', 'app.internal', 'ca', { dns: ['app.internal'] });
  await certs.ca('clients', 'Client CA');
  await certs.leaf('proxy', 'tiergate-proxy', 'clients');
  await certs.leaf('stranger', 'stranger', 'ca');
});
afterAll(() => certs[Symbol.dispose]());

interface HttpsUpstream extends AsyncDisposable {
  readonly address: string;
  /** Per request: ALPN protocol, HTTP version, Host, SNI and the client certificate's CN ('' = none). */
  readonly seen: { alpn: string | false | null; version: string; host: string; sni: string; clientCn: string }[];
}

/** A node:https server on 127.0.0.1 port 0 with the `app` certificate, answering what it saw. */
async function startHttps(options: ServerOptions = {}): Promise<HttpsUpstream> {
  const seen: HttpsUpstream['seen'] = [];
  const server = createHttpsServer({ key: certs.pem('app.key'), cert: certs.pem('app.pem'), ...options }, (req, res) => {
    const socket = req.socket as TLSSocket;
    const entry = {
      alpn: socket.alpnProtocol,
      version: req.httpVersion,
      host: req.headers.host ?? '',
      sni: (socket as unknown as { servername?: string | false }).servername || '',
      clientCn: (socket.getPeerCertificate().subject?.CN as string | undefined) ?? '',
    };
    seen.push(entry);
    res.end(JSON.stringify(entry));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('pools.X.protocol: https (HTTP/1.1 over TLS)', () => {
  it('forwards over TLS as HTTP/1.1 with the client Host, without verification by default (nginx proxy_ssl_verify off)', async () => {
    await using up = await startHttps();
    await using p = await startTestProxy({ pools: { app: { protocol: 'https', servers: [{ address: up.address }] } } });
    const res = await fetchText(`${p.url}/a?b=1`, { method: 'POST', headers: { host: 'shop.example' }, body: 'x' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ alpn: 'http/1.1', version: '1.1', host: 'shop.example', sni: '', clientCn: '' });
    // Keep-alive to the server: a second request takes the same TLS connection (one handshake).
    expect((await fetchText(`${p.url}/again`)).status).toBe(200);
  });

  it('offers only http/1.1 by ALPN: a server that would speak h2 is spoken to in HTTP/1.1 (protocol h2 would take h2)', async () => {
    const server = createSecureServer({ key: certs.pem('app.key'), cert: certs.pem('app.pem'), allowHTTP1: true }, (req, res) =>
      res.end(`${req.httpVersion}`),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      {
        await using p = await startTestProxy({ pools: { app: { protocol: 'https', servers: [{ address }] } } });
        expect((await fetchText(`${p.url}/`)).body).toBe('1.1');
      }
      {
        await using p = await startTestProxy({ pools: { app: { protocol: 'h2', servers: [{ address }] } } });
        expect((await fetchText(`${p.url}/`)).body).toBe('2.0');
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('tunnels a WebSocket upgrade over TLS (h2 pools answer 501)', async () => {
    const wsServer = createHttpsServer({ key: certs.pem('app.key'), cert: certs.pem('app.pem') });
    wsServer.on('upgrade', (req: IncomingMessage, socket) => {
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Alpn: ${(req.socket as TLSSocket).alpnProtocol}\r\n\r\n`,
      );
      socket.on('data', (d: Buffer) => socket.write(`echo:${d}`));
    });
    wsServer.listen(0, '127.0.0.1');
    await once(wsServer, 'listening');
    try {
      const address = `127.0.0.1:${(wsServer.address() as AddressInfo).port}`;
      await using p = await startTestProxy({ pools: { app: { protocol: 'https', servers: [{ address }] } } });
      const { connect } = await import('node:net');
      const s = connect(p.proxy.addresses()[0]!.port, '127.0.0.1');
      await once(s, 'connect');
      let got = '';
      s.setEncoding('latin1').on('data', (d: string) => (got += d));
      s.write(
        'GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      const deadline = Date.now() + 3000;
      while (!got.includes('\r\n\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      s.write('ping');
      while (!got.includes('echo:ping') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      s.destroy();
      expect(got).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
      expect(got.toLowerCase()).toContain('x-alpn: http/1.1');
      expect(got.endsWith('echo:ping')).toBe(true);
    } finally {
      wsServer.closeAllConnections();
      await new Promise((r) => wsServer.close(r));
    }
  });

  it('verifies against tls_ca with tls_verify by tls_server_name (the SNI, never the client Host); a wrong name or CA is a 502', async () => {
    await using up = await startHttps();
    const pool = (extra: Record<string, unknown>) => ({
      pools: { app: { protocol: 'https', tls_verify: true, tls_ca: certs.path('ca.pem'), servers: [{ address: up.address }], ...extra } },
    });
    {
      await using p = await startTestProxy(pool({ tls_server_name: 'app.internal' }));
      expect((await fetchText(`${p.url}/`, { headers: { host: 'one.example' } })).status).toBe(200);
      expect(up.seen.at(-1)).toMatchObject({ sni: 'app.internal', host: 'one.example' });
    }
    {
      await using p = await startTestProxy(pool({ tls_server_name: 'other.internal' }));
      expect((await fetchText(`${p.url}/`)).status).toBe(502);
    }
    {
      await using p = await startTestProxy(pool({ tls_server_name: 'app.internal', tls_ca: certs.path('clients.pem') }));
      expect((await fetchText(`${p.url}/`)).status).toBe(502);
    }
  });
});

/** A proxy configuration with one `https` pool `app` of the server at `address`, plus `extra` pool keys. */
const httpsPool = (address: string, extra: Record<string, unknown>) => ({
  pools: { app: { protocol: 'https', servers: [{ address }], ...extra } },
});

/** The proxy's client certificate (issued by the `clients` CA) as pool keys. */
const proxyCert = () => ({ tls_certificate: certs.path('proxy.pem'), tls_certificate_key: certs.path('proxy.key') });

/** Polls until the first server of the first pool is `want` healthy (or 5 s pass); returns what it is then. */
async function healthy(p: { proxy: { status(): { pools: { servers: { healthy: boolean }[] }[] } } }, want: boolean): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (p.proxy.status().pools[0]!.servers[0]!.healthy !== want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return p.proxy.status().pools[0]!.servers[0]!.healthy;
}

describe('pools.X.tls_certificate: a client certificate towards the servers (nginx proxy_ssl_certificate)', () => {
  /** What makes a server require a certificate issued by the `clients` CA. */
  const mutual = (): ServerOptions => ({ requestCert: true, rejectUnauthorized: true, ca: [certs.pem('clients.pem')] });

  it('presents it to a server that requires one; without it the handshake fails and the client gets 502', async () => {
    await using up = await startHttps(mutual());
    const pool = (extra: Record<string, unknown>) => httpsPool(up.address, extra);
    {
      await using p = await startTestProxy(pool({}));
      expect((await fetchText(`${p.url}/`)).status).toBe(502);
    }
    {
      await using p = await startTestProxy(pool({ ...proxyCert() }));
      const res = await fetchText(`${p.url}/`);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).clientCn).toBe('tiergate-proxy');
    }
    {
      // A certificate of another CA is refused by the server as no certificate is.
      await using p = await startTestProxy(
        pool({ tls_certificate: certs.path('stranger.pem'), tls_certificate_key: certs.path('stranger.key') }),
      );
      expect((await fetchText(`${p.url}/`)).status).toBe(502);
    }
  });

  it("the pool's https health check presents it too (and verifies with tls_ca): the server stays up", async () => {
    await using up = await startHttps(mutual());
    const check = { type: 'https', path: '/healthz', tls_verify: true, interval: '50ms', timeout: '1s', fall: 1, rise: 1 };
    const pool = (extra: Record<string, unknown>) => ({
      pools: {
        app: {
          protocol: 'https',
          tls_ca: certs.path('ca.pem'),
          tls_server_name: 'app.internal',
          servers: [{ address: up.address }],
          // No `host`: the check takes the pool's tls_server_name as its SNI and verified name.
          health_check: check,
          ...extra,
        },
      },
    });
    const checksSeen = () => up.seen.filter((s) => s.clientCn === 'tiergate-proxy').length;
    {
      await using p = await startTestProxy(pool({ ...proxyCert() }));
      const deadline = Date.now() + 5000;
      while (checksSeen() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(checksSeen()).toBeGreaterThanOrEqual(3);
      expect(p.proxy.status().pools[0]!.servers[0]!.healthy).toBe(true);
      expect((await fetchText(`${p.url}/`)).status).toBe(200);
    }
    {
      // Without the certificate every check fails its handshake: the server is taken out (fall 1) ...
      await using p = await startTestProxy(pool({}));
      expect(await healthy(p, false)).toBe(false);
      // ... and a reload that adds it gives the checks the certificate too (the pool's health is not kept as it was).
      await p.proxy.reload(proxySection(pool({ ...proxyCert() })));
      expect(await healthy(p, true)).toBe(true);
    }
  });

  it("an h2 pool's grpc health check over TLS presents it too", async () => {
    const tls = { key: certs.pem('app.key').toString(), cert: certs.pem('app.pem').toString(), clientCa: certs.pem('clients.pem') };
    await using up = await startGrpc({ tls });
    const pool = (extra: Record<string, unknown>) => ({
      pools: {
        grpc: {
          protocol: 'h2',
          servers: [{ address: up.address }],
          health_check: { type: 'grpc', tls: true, interval: '50ms', timeout: '1s', fall: 1, rise: 1 },
          ...extra,
        },
      },
    });
    {
      await using p = await startTestProxy(pool({}));
      expect(await healthy(p, false)).toBe(false);
    }
    {
      await using p = await startTestProxy(pool({ ...proxyCert() }));
      // Healthy now, and still after several more checks (it starts healthy: wait for checks to have run).
      await new Promise((r) => setTimeout(r, 300));
      expect(await healthy(p, true)).toBe(true);
    }
  });

  it('reload: adding the certificate takes new connections; a key of another certificate is refused and the old pool serves on', async () => {
    await using up = await startHttps(mutual());
    const pool = (extra: Record<string, unknown>) => httpsPool(up.address, extra);
    await using p = await startTestProxy(pool({}));
    expect((await fetchText(`${p.url}/`)).status).toBe(502);
    await p.proxy.reload(proxySection(pool({ ...proxyCert() })));
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
    await expect(
      p.proxy.reload(proxySection(pool({ tls_certificate: certs.path('proxy.pem'), tls_certificate_key: certs.path('stranger.key') }))),
    ).rejects.toMatchObject({ code: 'TG_CONFIG_INVALID', message: expect.stringContaining('proxy.pools.app.tls_certificate_key') });
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
  });

  it('refuses to start with an unreadable file, a file that is no certificate, or a key that is none, naming the key', async () => {
    const notPem = certs.path('not-a-cert.pem');
    writeFileSync(notPem, 'hello\n');
    const start = (cert: string, key: string) =>
      startTestProxy({
        pools: { app: { protocol: 'https', tls_certificate: cert, tls_certificate_key: key, servers: [{ address: '127.0.0.1:1' }] } },
      });
    await expect(start(certs.path('missing.pem'), certs.path('proxy.key'))).rejects.toMatchObject({
      code: 'TG_CONFIG_INVALID',
      message: expect.stringContaining('proxy.pools.app.tls_certificate: cannot read'),
    });
    await expect(start(notPem, certs.path('proxy.key'))).rejects.toMatchObject({
      code: 'TG_CONFIG_INVALID',
      message: expect.stringContaining('proxy.pools.app.tls_certificate: '),
    });
    await expect(start(certs.path('proxy.pem'), notPem)).rejects.toMatchObject({
      code: 'TG_CONFIG_INVALID',
      message: expect.stringContaining('proxy.pools.app.tls_certificate_key: '),
    });
  });
});

describe('an h2 pool speaking HTTP/1.1 by ALPN is unchanged', () => {
  it('still answers a WebSocket upgrade 501 (the choice is made per connection, after the request was routed)', async () => {
    await using up = await startHttps();
    await using p = await startTestProxy({ pools: { app: { protocol: 'h2', servers: [{ address: up.address }] } } });
    const raw = await rawExchange(
      p.proxy.addresses()[0]!.port,
      'GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 501 /);
    expect(up.seen).toHaveLength(0);
  });
});

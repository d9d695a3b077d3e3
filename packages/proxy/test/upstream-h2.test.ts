import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import {
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchText, proxySection, rawExchange, startTestProxy, startUpstream } from './helpers.ts';

type H2Handler = (req: Http2ServerRequest, res: Http2ServerResponse) => void;

/** A real node:http2 server (h2c, or h2 over TLS with `tls`) on 127.0.0.1 port 0, counting its sessions. */
interface H2Upstream extends AsyncDisposable {
  readonly address: string;
  readonly sessions: ServerHttp2Session[];
}

async function startH2(handler: H2Handler, tls?: { key: string; cert: string }): Promise<H2Upstream> {
  const server: Http2Server | Http2SecureServer = tls ? createSecureServer({ ...tls }, handler) : createServer(handler);
  const sessions: ServerHttp2Session[] = [];
  server.on('session', (s: ServerHttp2Session) => sessions.push(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessions,
    async [Symbol.asyncDispose]() {
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Answers with what it saw: HTTP version, method, authority, path, a few headers, the body. */
const echo: H2Handler = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.end(
      JSON.stringify({
        version: req.httpVersion,
        method: req.method,
        authority: req.authority,
        path: req.url,
        te: req.headers.te ?? null,
        xff: req.headers['x-forwarded-for'] ?? null,
        body: Buffer.concat(chunks).toString(),
      }),
    );
  });
};

let certDir = '';
let tlsPair: { key: string; cert: string };

beforeAll(async () => {
  certDir = await mkdtemp(join(tmpdir(), 'tg-h2-upstream-'));
  const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=app.internal'];
  args.push(
    '-addext',
    'subjectAltName=DNS:app.internal,IP:127.0.0.1',
    '-keyout',
    join(certDir, 'key.pem'),
    '-out',
    join(certDir, 'cert.pem'),
  );
  await promisify(execFile)('openssl', args);
  tlsPair = { key: await readFile(join(certDir, 'key.pem'), 'utf8'), cert: await readFile(join(certDir, 'cert.pem'), 'utf8') };
});
afterAll(() => rm(certDir, { recursive: true, force: true }));

describe('pools.X.protocol: h2c (cleartext HTTP/2, prior knowledge)', () => {
  it('forwards an HTTP/1.1 request as HTTP/2 and the response back, Host as :authority, bodies both ways', async () => {
    await using up = await startH2(echo);
    await using p = await startTestProxy({ pools: { app: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const res = await fetchText(`${p.url}/x?y=1`, {
      method: 'POST',
      headers: { host: 'shop.example', 'content-type': 'text/plain' },
      body: 'ping',
    });
    expect(res.status).toBe(200);
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(JSON.parse(res.body)).toEqual({
      version: '2.0',
      method: 'POST',
      authority: 'shop.example',
      path: '/x?y=1',
      te: null,
      xff: '127.0.0.1',
      body: 'ping',
    });
  });

  it('multiplexes concurrent requests on one connection per server', async () => {
    await using up = await startH2((req, res) => setTimeout(() => echo(req, res), 20));
    await using p = await startTestProxy({ pools: { app: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => fetchText(`${p.url}/${i}`)));
    expect(all.map((r) => JSON.parse(r.body).path)).toEqual(Array.from({ length: 20 }, (_, i) => `/${i}`));
    expect(up.sessions.length).toBe(1);
  });

  it('answers a WebSocket upgrade 501 without trying a server (HTTP/2 carries no Upgrade), and the server stays healthy', async () => {
    await using up = await startH2(echo);
    await using p = await startTestProxy({ pools: { app: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const raw = await rawExchange(
      p.proxy.addresses()[0]!.port,
      'GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 501 .*\r\nx-tiergate-error: TG_PROXY_UPGRADE_UNSUPPORTED\r\n/s);
    expect(up.sessions.length).toBe(0);
    expect(p.proxy.status().pools[0]!.servers[0]).toMatchObject({ failed: false, fails: 0 });
    expect((await fetchText(`${p.url}/after`)).status).toBe(200);
  });

  it('answers 502 when the server speaks only HTTP/1.1', async () => {
    await using up = await startUpstream((_req, res) => res.end('h1'));
    await using p = await startTestProxy({ pools: { app: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    expect((await fetchText(`${p.url}/`)).status).toBe(502);
  });
});

describe('pools.X.protocol: h2 (TLS, h2 by ALPN)', () => {
  it('forwards over TLS with h2, without verification by default (nginx proxy_ssl_verify off)', async () => {
    await using up = await startH2(echo, tlsPair);
    await using p = await startTestProxy({ pools: { app: { protocol: 'h2', servers: [{ address: up.address }] } } });
    const res = await fetchText(`${p.url}/tls`, { headers: { host: 'shop.example' } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ version: '2.0', authority: 'shop.example', path: '/tls' });
  });

  it('speaks HTTP/1.1 over TLS to a server whose ALPN picks http/1.1', async () => {
    const server = createHttpsServer(tlsPair, (req, res) => res.end(`h1 ${req.httpVersion} ${req.headers.host}`));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      await using p = await startTestProxy({ pools: { app: { protocol: 'h2', servers: [{ address }] } } });
      expect(await fetchText(`${p.url}/`, { headers: { host: 'shop.example' } })).toMatchObject({
        status: 200,
        body: 'h1 1.1 shop.example',
      });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('verifies against tls_ca with tls_verify, by tls_server_name (not the client Host), and refuses a name the certificate lacks', async () => {
    await using up = await startH2(echo, tlsPair);
    const pool = (extra: Record<string, unknown>) => ({
      pools: { app: { protocol: 'h2', tls_verify: true, tls_ca: join(certDir, 'cert.pem'), servers: [{ address: up.address }], ...extra } },
    });
    {
      await using p = await startTestProxy(pool({ tls_server_name: 'app.internal' }));
      // Two client Hosts, one TLS connection: the server name is the pool's, not the client's.
      expect((await fetchText(`${p.url}/a`, { headers: { host: 'one.example' } })).status).toBe(200);
      expect((await fetchText(`${p.url}/b`, { headers: { host: 'two.example' } })).status).toBe(200);
      expect(up.sessions.length).toBe(1);
      expect(up.sessions[0]!.socket && (up.sessions[0]!.socket as unknown as { servername?: string }).servername).toBe('app.internal');
    }
    {
      // The address is an IP in the certificate's SANs: verified without a name.
      await using p = await startTestProxy(pool({}));
      expect((await fetchText(`${p.url}/ip`)).status).toBe(200);
    }
    {
      await using p = await startTestProxy(pool({ tls_server_name: 'other.internal' }));
      expect((await fetchText(`${p.url}/`)).status).toBe(502);
    }
    {
      // Without tls_ca, Node's bundled CAs do not know the self-signed certificate.
      await using p = await startTestProxy({ pools: { app: { protocol: 'h2', tls_verify: true, servers: [{ address: up.address }] } } });
      expect((await fetchText(`${p.url}/`)).status).toBe(502);
    }
  });

  it('reload: an unreadable tls_ca is refused and the old pool serves on; a changed tls_server_name takes new connections', async () => {
    await using up = await startH2(echo, tlsPair);
    const pool = (extra: Record<string, unknown>) => ({
      pools: { app: { protocol: 'h2', tls_verify: true, tls_ca: join(certDir, 'cert.pem'), servers: [{ address: up.address }], ...extra } },
    });
    await using p = await startTestProxy(pool({ tls_server_name: 'app.internal' }));
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
    await expect(p.proxy.reload(proxySection(pool({ tls_ca: join(certDir, 'missing.pem') })))).rejects.toMatchObject({
      code: 'TG_CONFIG_INVALID',
    });
    expect((await fetchText(`${p.url}/`)).status).toBe(200);
    await p.proxy.reload(proxySection(pool({ tls_server_name: 'other.internal' })));
    expect((await fetchText(`${p.url}/`)).status).toBe(502);
  });

  it('refuses to start with an unreadable tls_ca, naming the key', async () => {
    await expect(
      startTestProxy({
        pools: { app: { protocol: 'h2', tls_verify: true, tls_ca: join(certDir, 'missing.pem'), servers: [{ address: '127.0.0.1:1' }] } },
      }),
    ).rejects.toMatchObject({ code: 'TG_CONFIG_INVALID', message: expect.stringContaining('proxy.pools.app.tls_ca') });
  });
});

describe('trailers from an HTTP/2 upstream to an HTTP/1.1 client', () => {
  /** Streams two chunks, then ends with grpc-status/grpc-message trailers, as a gRPC server does. */
  const withTrailers: H2Handler = (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/grpc' });
    res.write('one');
    res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' });
    res.end('two');
  };

  it('passes them chunked, announced in Trailer, to a client that sent TE: trailers, and tells the upstream te: trailers', async () => {
    let te: string | undefined;
    await using up = await startH2((req, res) => {
      te = req.headers.te as string | undefined;
      withTrailers(req, res);
    });
    await using p = await startTestProxy({ pools: { app: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const port = p.proxy.addresses()[0]!.port;
    const raw = await rawExchange(
      port,
      'POST /svc/M HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    expect(raw).toMatch(/\r\ntransfer-encoding: chunked\r\n/i);
    expect(raw).toMatch(/\r\ntrailer: grpc-status, grpc-message\r\n/i);
    expect(raw).toMatch(/0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\n\r\n$/);
    expect(te).toBe('trailers');
  });

  it('the same rule for an HTTP/1.1 upstream: its Trailer field and trailers only to a client that sent TE: trailers', async () => {
    await using up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { trailer: 'x-checksum' });
      res.write('data');
      res.addTrailers({ 'x-checksum': 'abc' });
      res.end();
    });
    await using p = await startTestProxy({ pools: { app: { servers: [{ address: up.address }] } } });
    const port = p.proxy.addresses()[0]!.port;
    const withTe = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n');
    expect(withTe).toMatch(/\r\ntrailer: x-checksum\r\n/i);
    expect(withTe).toMatch(/0\r\nx-checksum: abc\r\n\r\n$/);
    const without = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    expect(without).toMatch(/4\r\ndata\r\n0\r\n\r\n$/);
    expect(without).not.toMatch(/x-checksum|trailer:/i);
  });

  it('drops them for a client that did not send TE: trailers, and sends no te upstream', async () => {
    let te: string | undefined = 'unset';
    await using up = await startH2((req, res) => {
      te = req.headers.te as string | undefined;
      withTrailers(req, res);
    });
    await using p = await startTestProxy({ pools: { app: { protocol: 'h2c', servers: [{ address: up.address }] } } });
    const raw = await rawExchange(
      p.proxy.addresses()[0]!.port,
      'POST /svc/M HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
    expect(raw).toMatch(/onetwo|3\r\none\r\n3\r\ntwo/);
    expect(raw).not.toMatch(/grpc-status|trailer:/i);
    expect(te).toBeUndefined();
  });
});

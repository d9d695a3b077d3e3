import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as connectH2 } from 'node:http2';
import { connect, type TLSSocket } from 'node:tls';
import { isTgError } from '@tiergate/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TicketKeyRotation } from '../src/index.ts';
import { proxySection, server, startTestProxy, startUpstream, type Upstream } from './helpers.ts';
import { type CertDir, certDir, tlsGet, tlsRefused } from './tls-certs.ts';

let certs: CertDir;
let up: Upstream;

/** The upstream answers with the client-certificate fields it received, one per line. */
beforeAll(async () => {
  certs = certDir();
  await certs.ca('ca', 'Test CA');
  await certs.ca('other-ca', 'Other CA');
  await Promise.all([
    certs.leaf('default', 'default.test', 'ca', { dns: ['default.test'] }),
    certs.leaf('a', 'a.test', 'ca', { dns: ['a.test'] }),
    certs.leaf('wild', 'wild', 'ca', { dns: ['*.wild.test'] }),
    certs.leaf('named', 'named', 'ca'),
    certs.leaf('renewed', 'renewed.test', 'ca', { dns: ['default.test'] }),
    certs.leaf('client', 'alice', 'ca'),
    certs.leaf('stranger', 'mallory', 'other-ca'),
  ]);
  up = await startUpstream((req, res) => {
    req.resume();
    res.end(
      ['x-ssl-client-verify', 'x-ssl-client-s-dn', 'x-ssl-client-fingerprint'].map((h) => `${h}=${req.headers[h] ?? '-'}`).join('\n'),
    );
  });
}, 60_000);

afterAll(async () => {
  await up?.[Symbol.asyncDispose]();
  certs?.[Symbol.dispose]();
});

const cert = (name: string) => ({ cert: certs.path(`${name}.pem`), key: certs.path(`${name}.key`) });
const pools = () => ({ app: { servers: [server(up)] } });

async function tlsProxy(tls: Record<string, unknown>, options = {}) {
  const p = await startTestProxy({ listeners: [{ address: '127.0.0.1', port: 0, tls }], pools: pools() }, undefined, options);
  return Object.assign(p, { port: p.proxy.addresses()[0]!.port });
}

describe('TLS listener: certificates by SNI', () => {
  it('serves the certificate whose name matches SNI (exact, wildcard, from SAN or server_names), else the first', async () => {
    await using p = await tlsProxy({
      certificates: [cert('default'), cert('a'), cert('wild'), { ...cert('named'), server_names: ['b.test', '*.deep.wild.test'] }],
    });
    const cn = async (servername?: string) => (await tlsGet(p.port, servername ? { servername } : {})).serverCn;
    expect(await cn('a.test')).toBe('a.test');
    expect(await cn('A.TEST')).toBe('a.test');
    expect(await cn('x.wild.test')).toBe('wild');
    // nginx: a `*.` name matches deeper names too, and the longest wildcard wins.
    expect(await cn('x.y.wild.test')).toBe('wild');
    expect(await cn('x.deep.wild.test')).toBe('named');
    expect(await cn('b.test')).toBe('named');
    expect(await cn('wild.test')).toBe('default.test');
    expect(await cn('unknown.test')).toBe('default.test');
    expect(await cn()).toBe('default.test');
    const r = await tlsGet(p.port, { servername: 'a.test' });
    expect(r.status).toBe(200);
  });

  it('keeps the one-certificate form (cert + key)', async () => {
    await using p = await tlsProxy(cert('a'));
    const r = await tlsGet(p.port, { servername: 'a.test' });
    expect([r.status, r.serverCn]).toEqual([200, 'a.test']);
  });

  it('rejects a listener config without a certificate, or with both forms, naming the path', () => {
    const bad = (tls: unknown) => {
      try {
        proxySection({ listeners: [{ port: 0, tls }], pools: { app: { servers: ['127.0.0.1:1'] } } });
        return 'accepted';
      } catch (err) {
        return String((err as Error).message);
      }
    };
    expect(bad({ ssl_protocols: ['TLSv1.2'] })).toMatch(/proxy\.listeners\[0\]\.tls\.certificates.*needs cert \+ key, or certificates/s);
    expect(bad({ cert: 'a', key: 'b', certificates: [{ cert: 'a', key: 'b' }] })).toMatch(/either cert \+ key or certificates/);
    expect(bad({ cert: 'a' })).toMatch(/tls\.key.*cert and key go together/s);
    expect(bad({ cert: 'a', key: 'b', ssl_protocols: ['TLSv1.1', 'TLSv1.3'] })).toMatch(/ssl_protocols.*contiguous/s);
    expect(bad({ cert: 'a', key: 'b', ssl_verify_client: 'on' })).toMatch(/ssl_client_certificate.*needs ssl_client_certificate/s);
  });

  it('refuses at start a certificate without SAN names that is not the first, and names the file', async () => {
    const err = await tlsProxy({ certificates: [cert('default'), cert('named')] }).catch((e: unknown) => e);
    expect(isTgError(err) && err.code).toBe('TG_CONFIG_INVALID');
    expect(String((err as Error).message)).toContain(`${certs.path('named.pem')} names no DNS host`);
  });
});

describe('TLS listener: reload', () => {
  it('re-reads the files: new handshakes get the new certificate, open connections keep working', async () => {
    using dir = certDir();
    copyFileSync(certs.path('default.pem'), dir.path('c.pem'));
    copyFileSync(certs.path('default.key'), dir.path('c.key'));
    const tls = { cert: dir.path('c.pem'), key: dir.path('c.key') };
    await using p = await tlsProxy(tls);
    expect((await tlsGet(p.port)).serverCn).toBe('default.test');
    // A keep-alive connection opened before the reload.
    const open = connect({ host: '127.0.0.1', port: p.port, rejectUnauthorized: false });
    await once(open, 'secureConnect');
    const ask = async () => {
      open.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      const [chunk] = (await once(open, 'data')) as [Buffer];
      return chunk.toString('latin1').slice(0, 15);
    };
    expect(await ask()).toBe('HTTP/1.1 200 OK');
    copyFileSync(certs.path('renewed.pem'), dir.path('c.pem'));
    copyFileSync(certs.path('renewed.key'), dir.path('c.key'));
    await p.proxy.reload(proxySection({ listeners: [{ address: '127.0.0.1', port: 0, tls }], pools: pools() }));
    expect((await tlsGet(p.port)).serverCn).toBe('renewed.test');
    // The new context keeps what the server negotiates besides the certificate: h2 by ALPN.
    const alpn = connect({ host: '127.0.0.1', port: p.port, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] });
    await once(alpn, 'secureConnect');
    expect(alpn.alpnProtocol).toBe('h2');
    alpn.destroy();
    expect(await ask()).toBe('HTTP/1.1 200 OK');
    expect(open.getPeerX509Certificate()?.subject).toBe('CN=default.test');
    open.destroy();
  });

  it('rejects a reload whose key does not match or whose file is unreadable, and keeps serving the old certificate', async () => {
    using dir = certDir();
    copyFileSync(certs.path('default.pem'), dir.path('c.pem'));
    copyFileSync(certs.path('default.key'), dir.path('c.key'));
    const tls = { cert: dir.path('c.pem'), key: dir.path('c.key') };
    const section = () => proxySection({ listeners: [{ address: '127.0.0.1', port: 0, tls }], pools: pools() });
    await using p = await tlsProxy(tls);
    copyFileSync(certs.path('renewed.pem'), dir.path('c.pem')); // the key file still holds default's key
    const mismatch = await p.proxy.reload(section()).catch((e: unknown) => e);
    expect(isTgError(mismatch) && mismatch.code).toBe('TG_CONFIG_INVALID');
    expect(String((mismatch as Error).message)).toMatch(/c\.pem .*c\.key: .*key values mismatch/);
    expect((mismatch as { details?: { path?: unknown } }).details?.path).toEqual(['proxy', 'listeners', 0, 'tls', 'cert']);
    expect((await tlsGet(p.port)).serverCn).toBe('default.test');
    rmSync(dir.path('c.key'));
    const unreadable = await p.proxy.reload(section()).catch((e: unknown) => e);
    expect(String((unreadable as Error).message)).toMatch(/cannot read .*c\.key: ENOENT/);
    const r = await tlsGet(p.port);
    expect([r.status, r.serverCn]).toEqual([200, 'default.test']);
  });
});

describe('TLS listener: protocols and ciphers (Mozilla intermediate by default)', () => {
  it('refuses TLS 1.1 and a TLS 1.2 cipher outside the list; serves TLS 1.2 with a listed one and TLS 1.3', async () => {
    await using p = await tlsProxy(cert('a'));
    expect(await tlsRefused(p.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).toBeTruthy();
    // A CBC suite node's own default list accepts; Mozilla's intermediate list has only AEAD suites.
    expect(await tlsRefused(p.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' })).toMatch(
      /handshake failure|no shared cipher/i,
    );
    const r12 = await tlsGet(p.port, { maxVersion: 'TLSv1.2' });
    expect([r12.protocol, r12.cipher]).toEqual(['TLSv1.2', 'ECDHE-ECDSA-AES128-GCM-SHA256']);
    expect((await tlsGet(p.port)).protocol).toBe('TLSv1.3');
  });

  it('takes ssl_protocols, ssl_ciphers and ssl_prefer_server_ciphers overrides', async () => {
    await using p13 = await tlsProxy({ ...cert('a'), ssl_protocols: ['TLSv1.3'] });
    expect(await tlsRefused(p13.port, { maxVersion: 'TLSv1.2' })).toBeTruthy();
    await using cbc = await tlsProxy({
      ...cert('a'),
      ssl_ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA256',
      ssl_prefer_server_ciphers: true,
    });
    expect((await tlsGet(cbc.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' })).cipher).toBe(
      'ECDHE-ECDSA-AES128-SHA256',
    );
    // The server's order wins over the client's.
    const both = 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384';
    expect((await tlsGet(cbc.port, { maxVersion: 'TLSv1.2', ciphers: both })).cipher).toBe('ECDHE-ECDSA-AES256-GCM-SHA384');
  });
});

describe('TLS listener: session tickets', () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const)
    it(`resumes a ${version} session from its ticket, also under an SNI certificate`, async () => {
      await using p = await tlsProxy({ certificates: [cert('default'), cert('a')] });
      for (const servername of ['default.test', 'a.test']) {
        const first = await tlsGet(p.port, { servername, maxVersion: version });
        expect(first.reused).toBe(false);
        const second = await tlsGet(p.port, { servername, maxVersion: version, session: first.session! });
        // A resumed handshake sends no certificate: the ticket carries the session, the CN is not seen again.
        expect([second.reused, second.status]).toEqual([true, 200]);
      }
    });

  it('after a ticket key change, an older ticket makes a full handshake (node keeps one key)', async () => {
    await using p = await tlsProxy(cert('a'));
    const first = await tlsGet(p.port);
    p.proxy.setTicketKeys(0, randomBytes(48));
    const second = await tlsGet(p.port, { session: first.session! });
    expect([second.reused, second.status]).toEqual([false, 200]);
    expect((await tlsGet(p.port, { session: second.session! })).reused).toBe(true);
  });

  it('uses the ticket key it is given (what the workers of one primary share), and a key file', async () => {
    const keys = randomBytes(48);
    await using a = await tlsProxy(cert('a'), { ticketKeys: [keys] });
    await using b = await tlsProxy(cert('a'), { ticketKeys: [keys] });
    // Same listener config (both `port: 0`) and key: a ticket from `a` opens on `b`, as on another worker.
    const first = await tlsGet(a.port);
    expect((await tlsGet(b.port, { session: first.session! })).reused).toBe(true);
    using dir = certDir();
    writeFileSync(dir.path('ticket.key'), randomBytes(48));
    const fromFile = { ...cert('a'), ssl_session_ticket_key: dir.path('ticket.key') };
    await using f1 = await tlsProxy(fromFile);
    await using f2 = await tlsProxy(fromFile);
    const fromF1 = await tlsGet(f1.port);
    expect((await tlsGet(f2.port, { session: fromF1.session! })).reused).toBe(true);
    // The file wins over a key given by a primary.
    f2.proxy.setTicketKeys(0, keys);
    expect((await tlsGet(f2.port, { session: fromF1.session! })).reused).toBe(true);
    writeFileSync(dir.path('short.key'), keys.subarray(0, 32));
    const err = await tlsProxy({ ...cert('a'), ssl_session_ticket_key: dir.path('short.key') }).catch((e: unknown) => e);
    expect(String((err as Error).message)).toMatch(/short\.key holds 32 bytes; node's ticket key is 48/);
  });

  it('does not resume a session of one listener on a listener with other settings, nor with tickets off', async () => {
    const keys = randomBytes(48);
    await using a = await tlsProxy(cert('a'), { ticketKeys: [keys] });
    await using optional = await tlsProxy(
      { ...cert('a'), ssl_verify_client: 'optional', ssl_client_certificate: certs.path('ca.pem') },
      { ticketKeys: [keys] },
    );
    const first = await tlsGet(a.port);
    expect((await tlsGet(optional.port, { session: first.session! })).reused).toBe(false);
    await using off = await tlsProxy({ ...cert('a'), ssl_session_tickets: false });
    const s1 = await tlsGet(off.port);
    expect(s1.session === undefined || !(await tlsGet(off.port, { session: s1.session })).reused).toBe(true);
  });

  it('TicketKeyRotation gives each ticket listener its own key and replaces it every ssl_session_ticket_rotation', async () => {
    const section = proxySection({
      listeners: [
        { port: 0, tls: { ...cert('a'), ssl_session_ticket_rotation: '1s' } },
        { port: 0 },
        { port: 0, tls: { ...cert('a'), ssl_session_tickets: false } },
      ],
      pools: pools(),
    });
    const seen: number[] = [];
    let n = 0;
    const rotation = new TicketKeyRotation(
      section.listeners,
      (i) => seen.push(i),
      (len) => Buffer.alloc(len, ++n),
    );
    try {
      const keys = rotation.keys();
      expect(keys.map((k) => k?.[0])).toEqual([1, undefined, undefined]);
      await new Promise((r) => setTimeout(r, 1100));
      expect(seen).toEqual([0]);
      expect(rotation.keys()[0]![0]).toBe(2);
    } finally {
      rotation.stop();
    }
  });
});

describe('TLS listener: client certificates', () => {
  const mtls = (mode: string, extra = {}) => ({
    ...cert('a'),
    ssl_verify_client: mode,
    ssl_client_certificate: certs.path('ca.pem'),
    ...extra,
  });
  const client = (name: string) => ({ cert: certs.pem(`${name}.pem`), key: certs.pem(`${name}.key`) });
  const fields = (body: string) => Object.fromEntries(body.split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));

  it('on: the handshake fails without a certificate or with one from another CA; a valid one is forwarded as SUCCESS', async () => {
    await using p = await tlsProxy(mtls('on'));
    expect(await tlsRefused(p.port)).toMatch(/certificate required|handshake failure|socket hang up|ECONNRESET|no HTTP response/i);
    expect(await tlsRefused(p.port, client('stranger'))).toMatch(/unknown ca|certificate|no HTTP response/i);
    const r = await tlsGet(p.port, client('client'));
    const f = fields(r.body);
    expect([r.status, f['x-ssl-client-verify'], f['x-ssl-client-s-dn']]).toEqual([200, 'SUCCESS', 'CN=alice']);
    expect(f['x-ssl-client-fingerprint']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('optional: forwards NONE, SUCCESS or FAILED:<reason>, and drops the same fields sent by a client', async () => {
    await using p = await tlsProxy(mtls('optional'));
    const spoof = ['X-SSL-Client-Verify: SUCCESS', 'X-SSL-Client-S-DN: CN=admin', 'X_SSL_Client_Verify: SUCCESS'];
    const none = fields((await tlsGet(p.port, { headers: spoof })).body);
    expect([none['x-ssl-client-verify'], none['x-ssl-client-s-dn']]).toEqual(['NONE', '-']);
    const ok = fields((await tlsGet(p.port, { ...client('client'), headers: spoof })).body);
    expect([ok['x-ssl-client-verify'], ok['x-ssl-client-s-dn']]).toEqual(['SUCCESS', 'CN=alice']);
    const bad = fields((await tlsGet(p.port, client('stranger'))).body);
    expect([bad['x-ssl-client-verify'], bad['x-ssl-client-s-dn']]).toEqual(['FAILED:UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CN=mallory']);
  });

  it('HTTP/2 (ALPN h2): SNI picks the certificate and the client-certificate fields reach the upstream', async () => {
    await using p = await tlsProxy({
      certificates: [cert('default'), cert('a')],
      ssl_verify_client: 'optional',
      ssl_client_certificate: certs.path('ca.pem'),
    });
    const session = connectH2(`https://127.0.0.1:${p.port}`, { servername: 'a.test', rejectUnauthorized: false, ...client('client') });
    try {
      await once(session, 'connect');
      const socket = session.socket as TLSSocket;
      expect([socket.alpnProtocol, socket.getPeerX509Certificate()?.subject]).toEqual(['h2', 'CN=a.test']);
      const stream = session.request({ ':path': '/', 'x-ssl-client-verify': 'NONE' });
      let body = '';
      stream.setEncoding('utf8').on('data', (d: string) => (body += d));
      await once(stream, 'end');
      const f = fields(body);
      expect([f['x-ssl-client-verify'], f['x-ssl-client-s-dn']]).toEqual(['SUCCESS', 'CN=alice']);
    } finally {
      session.close();
    }
  });

  it('plain listeners drop client-certificate fields too', async () => {
    await using p = await startTestProxy({ pools: pools() });
    const port = p.proxy.addresses()[0]!.port;
    const { request } = await import('undici');
    const res = await request(`http://127.0.0.1:${port}/`, { headers: { 'x-ssl-client-verify': 'SUCCESS' } });
    expect(fields(await res.body.text())['x-ssl-client-verify']).toBe('-');
  });
});

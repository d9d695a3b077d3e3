import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { type ConnectionOptions, connect } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, type ConfigDir, configDir, type ProxyProc, startProxyProc, until } from './proxy-ops-helpers.ts';

/**
 * `tiergate proxy` with `workers: 2` and a TLS listener, as real processes: session tickets made by one
 * worker resume on the other (the primary shares the ticket keys), and SIGHUP re-reads the certificate.
 */
const TOKEN = 's3cret';
/** The ticket key rotation period: long enough for 26 handshakes after a change, short enough to wait for one. */
const ROTATION_S = 5;
const at = (cfg: ConfigDir, name: string) => join(dirname(cfg.file), name);

async function selfSigned(cfg: ConfigDir, name: string, cn: string): Promise<void> {
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${cn}`];
  args.push('-keyout', at(cfg, `${name}.key`), '-out', at(cfg, `${name}.pem`));
  await promisify(execFile)('openssl', args).catch((err: unknown) => {
    throw new Error('this test needs the openssl command (apt-get install openssl)', { cause: err });
  });
}

/** One `GET target` (default /) with `Connection: close` over a new TLS connection. */
async function tlsGet(
  port: number,
  options: ConnectionOptions & { target?: string } = {},
): Promise<{ status: number; reused: boolean; cn: string; session?: Buffer }> {
  const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
  let session: Buffer | undefined;
  socket.on('session', (s: Buffer) => {
    session = s;
  });
  try {
    await once(socket, 'secureConnect');
    const cn = socket.getPeerX509Certificate()?.subject ?? '';
    const reused = socket.isSessionReused();
    socket.write(`GET ${options.target ?? '/'} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    let text = '';
    socket.setEncoding('latin1').on('data', (d: string) => (text += d));
    await new Promise((r) => socket.once('close', r));
    return { status: Number(text.slice(9, 12)), reused, cn, ...(session && { session }) };
  } finally {
    socket.destroy();
  }
}

/** An upstream that, while `hold` is set, keeps requests for /hold unanswered until release(). */
async function holdingUpstream() {
  const waiting: ServerResponse[] = [];
  const server = createServer((req, res) => {
    req.resume();
    if (req.url === '/hold' && gate.hold) waiting.push(res);
    else res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const gate = {
    hold: false,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    release() {
      gate.hold = false;
      for (const r of waiting.splice(0)) r.end('ok');
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
  return gate;
}

describe('tiergate proxy, workers: 2, TLS listener', () => {
  let up: Awaited<ReturnType<typeof holdingUpstream>>;
  let cfg: ConfigDir;
  let p: ProxyProc;
  let port: number;

  beforeAll(async () => {
    up = await holdingUpstream();
    cfg = configDir('');
    await selfSigned(cfg, 'one', 'one.test');
    await selfSigned(cfg, 'two', 'two.test');
    copyFileSync(at(cfg, 'one.pem'), at(cfg, 'live.pem'));
    copyFileSync(at(cfg, 'one.key'), at(cfg, 'live.key'));
    writeFileSync(
      cfg.file,
      `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 0, tls: { cert: ${at(cfg, 'live.pem')}, key: ${at(cfg, 'live.key')}, ssl_session_ticket_rotation: ${ROTATION_S}s } }]
  admin: { address: 127.0.0.1, port: 0, token: ${TOKEN} }
  workers: 2
  shutdown_timeout: 5s
  pools:
    app:
      servers: [{ address: "${up.address}" }]
`,
    );
    p = await startProxyProc(cfg.file);
    port = Number(new URL(p.url).port);
  }, 60_000);
  afterAll(async () => {
    await p?.[Symbol.asyncDispose]();
    await up?.close();
    cfg?.[Symbol.dispose]();
  });

  /**
   * Waits for the next ticket key rotation (a ticket made before it stops resuming), so that the handshakes
   * that follow fall within one key period.
   */
  const afterRotation = async () => {
    const old = await tlsGet(port);
    await until(async () => !(await tlsGet(port, { session: old.session! })).reused, (ROTATION_S + 2) * 1000, 'a ticket key rotation');
    // Both workers get the new key in the same IPC round; leave it a moment to arrive.
    await new Promise((r) => setTimeout(r, 200));
  };

  it('resumes a session from its ticket on whichever worker takes the connection', async () => {
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      await afterRotation();
      const first = await tlsGet(port, { maxVersion });
      expect(first.status).toBe(200);
      const reused: boolean[] = [];
      // The primary hands connections to the workers in turn: 20 in a row reach both.
      for (let i = 0; i < 20; i++) reused.push((await tlsGet(port, { maxVersion, session: first.session! })).reused);
      expect(reused.filter((r) => !r)).toEqual([]);
      // Proof that both workers resume: 6 resumed connections held open upstream, each worker holding some.
      up.hold = true;
      const held = Array.from({ length: 6 }, () => tlsGet(port, { maxVersion, session: first.session!, target: '/hold' }));
      const inFlight = async () => {
        const s = JSON.parse((await admin(p.admin, '/status', TOKEN)).body) as { workers: { inFlight: number }[] };
        return s.workers.map((w) => w.inFlight);
      };
      await until(async () => (await inFlight()).reduce((a, b) => a + b, 0) === 6, 10_000, 'six held requests');
      expect((await inFlight()).every((n) => n > 0)).toBe(true);
      up.release();
      const results = await Promise.all(held);
      expect(results.map((r) => [r.status, r.reused])).toEqual(Array(6).fill([200, true]));
    }
  });

  it('the primary rotates the ticket key: older tickets stop resuming, new ones resume on both workers', async () => {
    // node:cluster already hands the first worker's ticket key to the others at listen (tls.Server
    // _getServerData), but never changes it: without the primary's rotation, `old` would resume forever.
    await afterRotation();
    const fresh = await tlsGet(port);
    const reused: boolean[] = [];
    for (let i = 0; i < 20; i++) reused.push((await tlsGet(port, { session: fresh.session! })).reused);
    expect(reused.filter((r) => !r)).toEqual([]);
  });

  it('SIGHUP: new handshakes get the renewed certificate; a bad one is refused and the old stays', async () => {
    copyFileSync(at(cfg, 'two.pem'), at(cfg, 'live.pem'));
    copyFileSync(at(cfg, 'two.key'), at(cfg, 'live.key'));
    p.child.kill('SIGHUP');
    await until(async () => (await tlsGet(port)).cn === 'CN=two.test', 10_000, 'the renewed certificate');
    // Both workers serve it.
    for (let i = 0; i < 6; i++) expect((await tlsGet(port)).cn).toBe('CN=two.test');
    copyFileSync(at(cfg, 'one.pem'), at(cfg, 'live.pem')); // one's certificate with two's key
    p.child.kill('SIGHUP');
    await until(() => /reload rejected/.test(p.stdout() + p.stderr()), 10_000, 'the rejected reload');
    expect(p.stdout() + p.stderr()).toMatch(/TLS listener 127\.0\.0\.1:0: .*live\.pem .*live\.key: .*key values mismatch/);
    for (let i = 0; i < 6; i++) expect((await tlsGet(port)).cn).toBe('CN=two.test');
  });
});

describe('tiergate proxy, workers: 1, TLS listener', () => {
  it('rotates its own ticket key every ssl_session_ticket_rotation', async () => {
    const cfg = configDir('');
    try {
      await selfSigned(cfg, 'one', 'one.test');
      writeFileSync(
        cfg.file,
        `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 0, tls: { cert: ${at(cfg, 'one.pem')}, key: ${at(cfg, 'one.key')}, ssl_session_ticket_rotation: 1s } }]
  admin: { address: 127.0.0.1, port: 0 }
  workers: 1
  pools:
    app:
      servers: [{ address: "127.0.0.1:9" }]
`,
      );
      await using p = await startProxyProc(cfg.file);
      const port = Number(new URL(p.url).port);
      const first = await tlsGet(port);
      // Resumes until the key changes (within 1 s), then never again.
      await until(async () => !(await tlsGet(port, { session: first.session! })).reused, 5_000, 'a ticket key rotation');
      expect((await tlsGet(port, { session: first.session! })).reused).toBe(false);
    } finally {
      cfg[Symbol.dispose]();
    }
  });
});

import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A directory of PEM files made with the machine's openssl at test time (P-256 keys: fast to generate). */
export interface CertDir extends Disposable {
  readonly dir: string;
  path(name: string): string;
  pem(name: string): Buffer;
  /** `<name>.pem` + `<name>.key`, self-signed CA (`CN=<cn>`). */
  ca(name: string, cn: string): Promise<void>;
  /** `<name>.pem` + `<name>.key` signed by CA `by`, with DNS SANs; `chain` appends the issuer's PEM (an intermediate). */
  leaf(name: string, cn: string, by: string, opts?: { dns?: string[]; isCa?: boolean; chain?: boolean }): Promise<void>;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    throw new Error('the TLS tests need the openssl command (apt-get install openssl)', { cause: err });
  }
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'];

export function certDir(): CertDir {
  const dir = mkdtempSync(join(tmpdir(), 'tg-tls-'));
  const path = (n: string) => join(dir, n);
  return {
    dir,
    path,
    pem: (n) => readFileSync(path(n)),
    ca: (name, cn) => openssl(['req', '-x509', ...KEY, '-subj', `/CN=${cn}`, '-keyout', path(`${name}.key`), '-out', path(`${name}.pem`)]),
    async leaf(name, cn, by, opts = {}) {
      const args = ['req', '-x509', '-CA', path(`${by}.pem`), '-CAkey', path(`${by}.key`), ...KEY, '-subj', `/CN=${cn}`];
      if (opts.dns) args.push('-addext', `subjectAltName=${opts.dns.map((d) => `DNS:${d}`).join(',')}`);
      if (!opts.isCa) args.push('-addext', 'basicConstraints=critical,CA:FALSE');
      await openssl([...args, '-keyout', path(`${name}.key`), '-out', path(`${name}.pem`)]);
      if (opts.chain) {
        const { appendFileSync } = await import('node:fs');
        appendFileSync(path(`${name}.pem`), readFileSync(path(`${by}.pem`)));
      }
    },
    [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** What one HTTPS exchange over a fresh TLS connection saw. */
export interface TlsExchange {
  readonly status: number;
  readonly body: string;
  /** CN of the certificate the server presented. */
  readonly serverCn: string;
  readonly reused: boolean;
  readonly protocol: string | null;
  readonly cipher: string;
  /** The TLS session to resume with (tickets arrive after the handshake in TLS 1.3). */
  readonly session: Buffer | undefined;
}

/**
 * A raw TLS connection to 127.0.0.1:port, one `GET path` with `Connection: close`, the whole response
 * read. Rejects with the TLS error when the handshake or the connection fails.
 */
export async function tlsGet(
  port: number,
  options: ConnectionOptions & { target?: string; headers?: string[] } = {},
): Promise<TlsExchange> {
  const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
  let session: Buffer | undefined;
  socket.on('session', (s: Buffer) => {
    session = s;
  });
  try {
    await once(socket, 'secureConnect');
    const peer = socket.getPeerX509Certificate();
    const extra = (options.headers ?? []).map((h) => `${h}\r\n`).join('');
    socket.write(
      `GET ${options.target ?? '/'} HTTP/1.1\r\nHost: ${options.servername || 'localhost'}\r\n${extra}Connection: close\r\n\r\n`,
    );
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((resolve, reject) => {
      socket.once('end', resolve);
      socket.once('close', resolve);
      socket.once('error', reject);
    });
    const text = Buffer.concat(chunks).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    if (status === 0) throw new Error(`no HTTP response: ${JSON.stringify(text.slice(0, 200))}`);
    return {
      status,
      body: text.slice(text.indexOf('\r\n\r\n') + 4),
      serverCn: /CN=([^\n]+)/.exec(peer?.subject ?? '')?.[1] ?? '',
      reused: socket.isSessionReused(),
      protocol: socket.getProtocol(),
      cipher: socket.getCipher().name,
      session,
    };
  } finally {
    socket.destroy();
  }
}

/** Whether a handshake (and a first read: TLS 1.3 reports a refused client certificate after it) fails. */
export async function tlsRefused(port: number, options: ConnectionOptions = {}): Promise<string | false> {
  try {
    await tlsGet(port, options);
    return false;
  } catch (err) {
    return (err as Error).message || String((err as { code?: string }).code);
  }
}

export type { TLSSocket };

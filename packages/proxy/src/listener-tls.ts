/**
 * TLS of one proxy listener: certificates chosen by SNI (nginx: one `ssl_certificate` per `server_name`),
 * Mozilla "intermediate" protocol and cipher defaults, session tickets with keys the cluster primary shares
 * and rotates, and optional client certificates. The server (node:tls, node:http2 or node:https) is created elsewhere
 * from `options()`; `attach()` gives this object the server so that a reload and a ticket rotation reach it.
 */
import { createHash, constants as cryptoConstants, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createSecureContext,
  type SecureContext,
  type SecureVersion,
  type TLSSocket,
  type TlsOptions,
  type Server as TlsServer,
} from 'node:tls';
import type { DeepReadonly, ListenerConfig, ListenerTlsConfig } from '@tiergate/config';
import { TgError } from '@tiergate/errors';

type Listener = DeepReadonly<ListenerConfig>;
type Settings = DeepReadonly<ListenerTlsConfig>;

/** node's `ticketKeys`: 16 bytes of key name, 16 of HMAC secret, 16 of AES key. */
export const TICKET_KEY_BYTES = 48;

interface Certificate {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly context: SecureContext;
}

/** What a reload re-reads: certificate files, the client CA, the ticket key file. */
interface Material {
  readonly certs: readonly Certificate[];
  readonly exact: ReadonlyMap<string, SecureContext>;
  /** `*.suffix` entries as `.suffix`, longest first (nginx picks the longest matching wildcard). */
  readonly wildcards: readonly (readonly [string, SecureContext])[];
  readonly ca: Buffer | undefined;
  readonly ticketKeyFile: Buffer | undefined;
}

/** What the upstream is told about a client certificate (`ssl_verify_client` on or optional). */
export interface ClientCertFacts {
  /** nginx `$ssl_client_verify`: `SUCCESS`, `FAILED:<reason>` or `NONE`. */
  readonly verify: string;
  /** nginx `$ssl_client_s_dn` (RFC 2253), when a certificate was sent. */
  readonly subject: string | undefined;
  /** SHA-256 of the DER certificate, lowercase hex, when a certificate was sent. */
  readonly fingerprint: string | undefined;
}

/** One TLS listener's certificates and settings, and the servers that use them. */
export class ListenerTls {
  readonly #settings: Settings;
  readonly #where: string;
  readonly #sessionIdContext: string;
  readonly #servers = new Set<TlsServer>();
  #material: Material;
  #ticketKeys: Buffer;
  readonly #verified = new WeakMap<TLSSocket, ClientCertFacts>();

  private constructor(settings: Settings, where: string, sessionIdContext: string, material: Material, ticketKeys: Buffer) {
    this.#settings = settings;
    this.#where = where;
    this.#sessionIdContext = sessionIdContext;
    this.#material = material;
    this.#ticketKeys = ticketKeys;
  }

  /**
   * Reads and checks every file of `listener.tls` (index: its place in `proxy.listeners`, for error paths).
   * A file that cannot be read, a certificate that does not parse or whose key does not match, or a ticket
   * key file that is not 48 bytes rejects with TG_CONFIG_INVALID naming the file and the reason.
   * Files are read synchronously: a few KiB each, at start and on reload only (nginx reads them blocking too).
   */
  static load(listener: Listener, index = 0): ListenerTls {
    const settings = listener.tls;
    if (!settings) throw new TypeError('ListenerTls.load: the listener has no tls section');
    const where = `${listener.address}:${listener.port}`;
    // Tickets and session ids of one listener must not resume on another whose checks differ (a session made
    // where no client certificate is asked for, resumed where one is required, would skip the check).
    const sessionIdContext = createHash('sha256').update(JSON.stringify(listener)).digest('hex').slice(0, 32);
    const material = readMaterial(settings, sessionIdContext, where, index);
    const keys = material.ticketKeyFile ?? randomBytes(TICKET_KEY_BYTES);
    return new ListenerTls(settings, where, sessionIdContext, material, keys);
  }

  /** Options for `https.createServer` / `http2.createSecureServer` (merge the HTTP options in). */
  options(): TlsOptions {
    const s = this.#settings;
    const verify = s.ssl_verify_client;
    return {
      ...this.#contextOptions(this.#material.certs[0]!, this.#material.ca),
      // With one certificate there is nothing to choose: no SNICallback spares node a call into JS per handshake.
      ...(this.#material.certs.length > 1 && {
        SNICallback: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => cb(null, this.#contextFor(name)),
      }),
      requestCert: verify !== 'off',
      // `on`: the handshake fails without a valid certificate (TLS alert), before any HTTP is read.
      rejectUnauthorized: verify === 'on',
    };
  }

  /** Servers built from options(): a reload and new ticket keys apply to them. */
  attach(server: TlsServer): void {
    this.#servers.add(server);
    server.on('close', () => this.#servers.delete(server));
  }

  /**
   * Takes the files `next` read (a reload: same settings, re-read files). New handshakes use them; open
   * connections keep the certificate they negotiated. The ticket key stays unless it comes from a file.
   */
  replace(next: ListenerTls): void {
    this.#material = next.#material;
    if (next.#material.ticketKeyFile) this.#ticketKeys = next.#material.ticketKeyFile;
    for (const server of this.#servers) server.setSecureContext(this.options());
    this.#applyTicketKeys();
  }

  /**
   * The 48-byte ticket key (from the cluster primary). node keeps one key per context: tickets sealed with the
   * previous key are not accepted after the change, so those clients make one full handshake (docs/proxy.md).
   * Ignored when `ssl_session_ticket_key` names a file: the file is the key.
   */
  setTicketKeys(keys: Buffer): void {
    if (keys.length !== TICKET_KEY_BYTES) throw new RangeError(`ticket keys must be ${TICKET_KEY_BYTES} bytes, got ${keys.length}`);
    if (this.#material.ticketKeyFile) return;
    this.#ticketKeys = keys;
    this.#applyTicketKeys();
  }

  /** The facts forwarded upstream, or undefined when this listener does not ask for client certificates. */
  clientCert(socket: TLSSocket): ClientCertFacts | undefined {
    if (this.#settings.ssl_verify_client === 'off') return undefined;
    let facts = this.#verified.get(socket);
    if (!facts) {
      facts = clientCertFacts(socket);
      this.#verified.set(socket, facts);
    }
    return facts;
  }

  #applyTicketKeys(): void {
    for (const server of this.#servers) server.setTicketKeys(this.#ticketKeys);
    // OpenSSL seals and opens tickets with the context the handshake started on (the server's); the SNI
    // contexts get the same key so that holds whichever context OpenSSL consults.
    for (const c of this.#material.certs) c.context.context.setTicketKeys(this.#ticketKeys);
  }

  #contextOptions(c: { cert: Buffer; key: Buffer }, ca: Buffer | undefined): TlsOptions {
    return contextOptions(this.#settings, c, ca, this.#sessionIdContext, this.#ticketKeys);
  }

  /** nginx server_name order: the exact name, then the longest `*.` wildcard; none → the default (undefined). */
  #contextFor(servername: string): SecureContext | undefined {
    const m = this.#material;
    const name = servername.toLowerCase();
    const exact = m.exact.get(name);
    if (exact) return exact;
    for (const [suffix, context] of m.wildcards) if (name.endsWith(suffix) && name.length > suffix.length) return context;
    return undefined;
  }

  toString(): string {
    return `ListenerTls(${this.#where})`;
  }
}

/** Convenience for a server that needs no reload or shared ticket keys: the options of `listener.tls`. */
export function listenerTlsOptions(listener: Listener, index = 0): TlsOptions {
  return ListenerTls.load(listener, index).options();
}

function contextOptions(
  s: Settings,
  c: { cert: Buffer; key: Buffer },
  ca: Buffer | undefined,
  sessionIdContext: string,
  ticketKeys: Buffer,
): TlsOptions {
  const versions = [...s.ssl_protocols].sort() as SecureVersion[];
  return {
    cert: c.cert,
    key: c.key,
    ...(ca && { ca }),
    minVersion: versions[0]!,
    maxVersion: versions.at(-1)!,
    ciphers: s.ssl_ciphers,
    ecdhCurve: s.ssl_ecdh_curve,
    honorCipherOrder: s.ssl_prefer_server_ciphers,
    // The DHE suites of the intermediate list need a group: node's 'auto' is the RFC 7919 one Mozilla names (ffdhe2048).
    dhparam: 'auto',
    sessionIdContext,
    sessionTimeout: Math.max(1, Math.ceil(s.ssl_session_timeout / 1000)),
    ticketKeys,
    secureOptions: s.ssl_session_tickets ? 0 : cryptoConstants.SSL_OP_NO_TICKET,
  };
}

function readMaterial(s: Settings, sessionIdContext: string, where: string, index: number): Material {
  const base = ['proxy', 'listeners', index, 'tls'];
  const read = (file: string, path: (string | number)[]): Buffer => {
    try {
      return readFileSync(file);
    } catch (cause) {
      throw invalid(`cannot read ${file}: ${(cause as Error).message}`, where, [...base, ...path], cause);
    }
  };
  const ca = s.ssl_client_certificate === undefined ? undefined : read(s.ssl_client_certificate, ['ssl_client_certificate']);
  const ticketKeyFile = s.ssl_session_ticket_key === undefined ? undefined : read(s.ssl_session_ticket_key, ['ssl_session_ticket_key']);
  if (ticketKeyFile && ticketKeyFile.length !== TICKET_KEY_BYTES)
    throw invalid(
      `${s.ssl_session_ticket_key} holds ${ticketKeyFile.length} bytes; node's ticket key is ${TICKET_KEY_BYTES} (openssl rand 48)`,
      where,
      [...base, 'ssl_session_ticket_key'],
    );
  const entries = s.certificates ?? [{ cert: s.cert!, key: s.key!, server_names: undefined }];
  const certs: Certificate[] = [];
  const exact = new Map<string, SecureContext>();
  const wildcards: [string, SecureContext][] = [];
  for (const [i, e] of entries.entries()) {
    const path = s.certificates ? ['certificates', i] : [];
    const cert = read(e.cert, [...path, 'cert']);
    const key = read(e.key, [...path, 'key']);
    let x509: X509Certificate;
    let context: SecureContext;
    try {
      x509 = new X509Certificate(cert);
      // Throws on a key that does not match the certificate ("key values mismatch") or does not parse.
      context = createSecureContext(contextOptions(s, { cert, key }, ca, sessionIdContext, randomBytes(TICKET_KEY_BYTES)));
    } catch (cause) {
      throw invalid(`${e.cert} / ${e.key}: ${(cause as Error).message}`, where, [...base, ...path, 'cert'], cause);
    }
    const names = e.server_names ?? dnsNames(x509);
    if (names.length === 0 && i > 0)
      throw invalid(`${e.cert} names no DNS host in its subjectAltName: give server_names`, where, [...base, ...path, 'server_names']);
    certs.push({ cert, key, context });
    for (const n of names.map((x) => x.toLowerCase())) {
      // nginx: the first server block naming a host serves it.
      if (n.startsWith('*.')) {
        if (!wildcards.some(([w]) => w === n.slice(1))) wildcards.push([n.slice(1), context]);
      } else if (!exact.has(n)) exact.set(n, context);
    }
  }
  wildcards.sort((a, b) => b[0].length - a[0].length);
  return { certs, exact, wildcards, ca, ticketKeyFile };
}

/** The `DNS:` entries of a certificate's subjectAltName. */
function dnsNames(x509: X509Certificate): string[] {
  return (x509.subjectAltName ?? '')
    .split(', ')
    .filter((e) => e.startsWith('DNS:'))
    .map((e) => e.slice(4));
}

function invalid(message: string, where: string, path: (string | number)[], cause?: unknown): TgError {
  return new TgError('TG_CONFIG_INVALID', `TLS listener ${where}: ${message}`, {
    details: { path },
    ...(cause !== undefined && { cause }),
  });
}

/** nginx `$ssl_client_verify`, `$ssl_client_s_dn`, and a SHA-256 fingerprint of the client certificate. */
function clientCertFacts(socket: TLSSocket): ClientCertFacts {
  const peer = socket.getPeerX509Certificate();
  if (!peer) return { verify: 'NONE', subject: undefined, fingerprint: undefined };
  const subject = rfc2253(peer.subject);
  const fingerprint = peer.fingerprint256.replaceAll(':', '').toLowerCase();
  if (!socket.authorized) return { verify: `FAILED:${String(socket.authorizationError ?? 'unverified')}`, subject, fingerprint };
  return { verify: 'SUCCESS', subject, fingerprint };
}

/**
 * node prints a name one attribute a line, most significant first, with RFC 2253 escaping; RFC 2253 writes
 * them the other way round, comma-separated. Bytes outside printable ASCII become `\XX` so that the value is
 * a valid header field.
 */
function rfc2253(multiline: string): string {
  return multiline
    .split('\n')
    .filter((l) => l !== '')
    .reverse()
    .join(',')
    .replace(/[^\x20-\x7e]/gu, (ch) => [...Buffer.from(ch)].map((b) => `\\${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

/**
 * The generated ticket keys of every listener that uses them (`ssl_session_tickets` on, no key file), each
 * replaced every `ssl_session_ticket_rotation`. The cluster primary runs one and sends the keys to its
 * workers, so a ticket one worker issued opens on every other; a single process runs its own.
 */
export class TicketKeyRotation {
  readonly #keys: (Buffer | undefined)[];
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(
    listeners: readonly Listener[],
    onRotate: (index: number, keys: Buffer) => void,
    random: (n: number) => Buffer = randomBytes,
  ) {
    this.#keys = listeners.map((l) => (generatesTicketKeys(l) ? random(TICKET_KEY_BYTES) : undefined));
    listeners.forEach((l, i) => {
      if (!this.#keys[i] || !l.tls) return;
      const timer = setInterval(() => {
        const keys = random(TICKET_KEY_BYTES);
        this.#keys[i] = keys;
        onRotate(i, keys);
      }, l.tls.ssl_session_ticket_rotation);
      this.#timers.push(timer.unref());
    });
  }

  /** The current key of each listener (undefined: no TLS, tickets off, or a key file). */
  keys(): (Buffer | undefined)[] {
    return [...this.#keys];
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
  }
}

function generatesTicketKeys(l: Listener): boolean {
  return l.tls?.ssl_session_tickets === true && l.tls.ssl_session_ticket_key === undefined;
}

/**
 * TLS and HTTP/2 to upstream servers (`pools.X.protocol: https | h2 | h2c`) and the trailer rules gRPC needs;
 * the rest of the proxy stays protocol-blind. undici speaks h2 itself: by ALPN over TLS (`allowH2`), and in
 * cleartext with prior knowledge (`useH2c`, what its H2CClient sets), multiplexing up to
 * H2_MAX_CONCURRENT_STREAMS requests on one connection per server before it opens another.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { DeepReadonly, PoolConfig } from '@tiergate/config';
import { splitHostPort } from '@tiergate/config/runtime';
import { TgError } from '@tiergate/errors';
import type { TlsFiles } from '@tiergate/health';
import type { buildConnector as BuildConnector, Pool } from 'undici';
import { trailerPairs } from './forward-headers.ts';
import { buildConnector } from './undici-parts.ts';

type PoolSection = DeepReadonly<PoolConfig>;

/**
 * Streams per upstream connection: undici's default and gRPC's usual server limit (grpc-go and grpc-js
 * advertise 100 or more; nginx's `http2_max_concurrent_streams` is 128). The server's SETTINGS may lower it.
 */
export const H2_MAX_CONCURRENT_STREAMS = 100;

/** What a pool adds to its undici Pool's options for its protocol, and to each request (`servername`). */
export interface UpstreamProtocol {
  /** `http://` or `https://`. */
  readonly scheme: string;
  /** Spread into the undici Pool options (they win over the HTTP/1.1 ones). */
  readonly poolOptions: Pool.Options;
  /**
   * The TLS server name every request of the pool names (undici's `servername`). undici otherwise takes it
   * from each request's Host, which is the client's: a Host that changes from one request to the next would
   * close the TLS connection each time (undici reconnects when the name changes), and SNI and verification
   * would follow whatever the client wrote. Undefined for cleartext pools.
   */
  readonly servername: string | undefined;
  /** Part of the key under which a reload keeps a server's connections (the files' digests included). */
  readonly key: string;
  /** TLS pools: the `tls_ca` / `tls_certificate` / `tls_certificate_key` contents and `tls_server_name`, for the pool's health checks. */
  readonly tlsFiles?: TlsFiles;
}

/** Whether a pool of `protocol` speaks HTTP/2 to its servers (`h2` may still fall back to HTTP/1.1 by ALPN). */
export function speaksH2(protocol: PoolSection['protocol']): boolean {
  return protocol === 'h2' || protocol === 'h2c';
}

/**
 * The protocol settings of `config` (`protocol`, `tls_*`) for one server. `at` names the pool for errors.
 * Throws TG_CONFIG_INVALID when a `tls_*` file cannot be read (at startup and on reload, which then keeps the
 * old configuration).
 */
export function upstreamProtocol(address: string, config: PoolSection, at: string, connectTimeoutMs: number): UpstreamProtocol {
  if (config.protocol === 'http1') return { scheme: 'http://', poolOptions: {}, servername: undefined, key: 'http1' };
  const h2: Pool.Options = {
    allowH2: true,
    // undici's h2 client counts a stream per request against `pipelining` (client.js getMaxConcurrent).
    pipelining: H2_MAX_CONCURRENT_STREAMS,
    maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
  };
  if (config.protocol === 'h2c') {
    // Top-level `useH2c`, not `h2Options.useH2c`: undici's Pool reads only the former for its connector (the one
    // that marks a cleartext socket as h2) and its protocol probe; its types omit it.
    const h2c = { ...h2, useH2c: true } as Pool.Options;
    return { scheme: 'http://', poolOptions: h2c, servername: undefined, key: 'h2c' };
  }
  const allowH2 = config.protocol === 'h2';
  const ca = config.tls_ca === undefined ? undefined : readPem(config.tls_ca, at, 'tls_ca');
  const cert = config.tls_certificate === undefined ? undefined : readPem(config.tls_certificate, at, 'tls_certificate');
  const key = config.tls_certificate_key === undefined ? undefined : readPem(config.tls_certificate_key, at, 'tls_certificate_key');
  const host = splitHostPort(address)!.host;
  // RFC 6066 §3: SNI carries a host name, never an address; an address is then verified as an IP SAN.
  const name = config.tls_server_name ?? (isIP(host) === 0 ? host : undefined);
  if (cert !== undefined) checkClientCertificate(cert, key!, at);
  const connector = buildConnector({
    timeout: connectTimeoutMs,
    // `https` offers only http/1.1 by ALPN (what undici sends without allowH2); `h2` offers h2 first: a server
    // that speaks both should pick it (ALPN leaves the choice to the server, and some follow the client's order).
    allowH2,
    preferH2: allowH2,
    rejectUnauthorized: config.tls_verify,
    ...(ca === undefined ? {} : { ca }),
    // The client certificate (nginx proxy_ssl_certificate): undici's connector passes these on to tls.connect.
    ...(cert === undefined ? {} : { cert, key }),
  } as BuildConnector.BuildOptions);
  return {
    scheme: 'https://',
    poolOptions: { ...(allowH2 ? h2 : {}), connect: (opts, cb) => connector({ ...opts, servername: name ?? '' }, cb) },
    servername: name ?? host,
    key: JSON.stringify([config.protocol, config.tls_verify, config.tls_server_name, digest(ca), digest(cert), digest(key)]),
    tlsFiles: {
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert, key: key! }),
      ...(config.tls_server_name === undefined ? {} : { servername: config.tls_server_name }),
    },
  };
}

/**
 * tls.connect parses the certificate and key at each connection, too late to report a bad file: parsing them
 * here refuses a file that is not a certificate, a key that is not one, and a key of another certificate, with
 * the configuration, not at the first request.
 */
function checkClientCertificate(cert: Buffer, key: Buffer, at: string): void {
  for (const [field, options] of [
    ['tls_certificate', { cert }],
    ['tls_certificate_key', { cert, key }],
  ] as const) {
    try {
      createSecureContext(options);
    } catch (err) {
      throw new TgError('TG_CONFIG_INVALID', `${at}.${field}: ${(err as Error).message}`, {
        cause: err,
        details: { path: [...at.split('.'), field] },
      });
    }
  }
}

function digest(pem: Buffer | undefined): string | null {
  return pem === undefined ? null : createHash('sha256').update(pem).digest('hex');
}

function readPem(path: string, at: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TgError('TG_CONFIG_INVALID', `${at}.${field}: cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
      details: { path: [...at.split('.'), field] },
    });
  }
}

/** No fields (never written to): h1 responses end with null trailers, and this costs no allocation. */
const NONE: Buffer[] = [];

/**
 * undici gives an h2 response's headers and trailers as node:http2's object (`{ name: value | value[] }`),
 * an h1 one's as the raw `[name, value, …]` Buffer list the proxy forwards from: this makes the list.
 */
export function rawHeaderList(raw: unknown): Buffer[] {
  if (Array.isArray(raw)) return raw as Buffer[];
  if (raw === null || typeof raw !== 'object') return NONE;
  const out: Buffer[] = [];
  for (const [name, value] of Object.entries(raw as Record<string, string | string[] | undefined>)) {
    if (value === undefined || name.startsWith(':')) continue;
    for (const v of typeof value === 'string' ? [value] : value) out.push(Buffer.from(name, 'latin1'), Buffer.from(v, 'latin1'));
  }
  return out;
}

/**
 * Whether the client takes trailers: `TE: trailers` (RFC 9110 §10.1.4), as every gRPC client sends. A client
 * that did not say so gets none (an HTTP/1.1 one would drop them anyway, or misread them), and the upstream
 * is not told that trailers would reach the client (gRPC uses that `te` to detect such proxies).
 */
export function acceptsTrailers(req: { readonly headers: NodeJS.Dict<string | string[]> }): boolean {
  const te = req.headers.te;
  return te !== undefined && /(?:^|,)\s*trailers\s*(?:[;,]|$)/i.test(String(te));
}

/**
 * The `Trailer` field announcing the response's trailers (RFC 9110 §6.6.2) to an HTTP/1.1 client that takes
 * them: the upstream's own `Trailer` fields (dropped with the hop-by-hop ones), else for a gRPC response, whose
 * servers rarely announce theirs, `grpc-status, grpc-message`. Undefined when the response will not be
 * chunked (a `Content-Length`, no body: Node throws on a `Trailer` field it cannot honour) or has none.
 */
export function trailerAnnouncement(raw: readonly Buffer[], status: number, method: string | undefined): string | undefined {
  if (status === 204 || status === 304 || method === 'HEAD') return undefined;
  let announced: string | undefined;
  let grpc = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    if (name === 'content-length') return undefined;
    if (name === 'trailer') {
      const v = raw[i + 1]!.toString('latin1');
      announced = announced === undefined ? v : `${announced}, ${v}`;
    } else if (name === 'content-type') grpc = raw[i + 1]!.toString('latin1').toLowerCase().startsWith('application/grpc');
  }
  return announced ?? (grpc ? 'grpc-status, grpc-message' : undefined);
}

/**
 * Trailer fields for `res.addTrailers`: HTTP/1.1's takes `[name, value]` pairs (repeats kept), node:http2's
 * compatibility response only an object (it would send pairs as fields named `0`, `1`, …), where a repeated
 * name becomes a list.
 */
export function trailersFor(raw: readonly Buffer[], h2: boolean): [string, string][] | Record<string, string | string[]> {
  if (!h2) return trailerPairs(raw);
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    const had = out[name];
    out[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return out;
}

/**
 * A gRPC "Trailers-Only" response (PROTOCOL-HTTP2.md: the status in the one HEADERS frame, which ends the
 * stream), as gRPC servers answer a call that fails before any message: `grpc-status` among the headers.
 */
export function isTrailersOnly(raw: readonly Buffer[]): boolean {
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.length === 11 && raw[i]!.toString('latin1').toLowerCase() === 'grpc-status') return true;
  return false;
}

/**
 * Sets the head of an HTTP/2 client's response without sending it. node:http2's compatibility `writeHead`
 * sends HEADERS at once without END_STREAM, so a Trailers-Only answer would reach the client as headers
 * followed by an empty end, which gRPC clients refuse ("Call ended without gRPC status"). Set this way, the
 * head goes out with the response's end (`res.end()` sends it with END_STREAM), or with the first body
 * chunk if one comes after all.
 */
export function deferHead(res: ServerResponse, status: number, headers: readonly string[]): void {
  res.statusCode = status;
  for (let i = 0; i < headers.length; i += 2) res.appendHeader(headers[i]!, headers[i + 1]!);
}

import { constants, createGzip, type Gzip } from 'node:zlib';
import type { DeepReadonly, ProxyConfig } from '@tiergate/config';

/**
 * `proxy.gzip` (nginx `gzip on`): responses compressed on their way to the client, decided per response the way
 * nginx's gzip filter decides (ngx_http_gzip_filter_module), plus RFC 9110's `no-transform`. node's zlib does the
 * compressing (a Gzip stream, on libuv's thread pool); what is here is only the decision and the header changes.
 */

/** `proxy.gzip`, compiled for the exchange (proxy-server.ts newGeneration). */
export interface GzipSettings {
  readonly level: number;
  /** Responses whose Content-Length is below this are sent as they are (nginx `gzip_min_length`). */
  readonly minLength: number;
  /** Media types compressed (lower case, no parameters); nginx `gzip_types`. */
  readonly types: ReadonlySet<string>;
  /** Add `Vary: Accept-Encoding` to compressed responses (nginx `gzip_vary`). */
  readonly vary: boolean;
}

type GzipConfig = DeepReadonly<ProxyConfig>['gzip'];

export function compileGzip(config: GzipConfig): GzipSettings | undefined {
  if (!config.enabled) return undefined;
  return {
    level: config.level,
    minLength: config.min_length,
    types: new Set(config.types.map((t) => t.toLowerCase())),
    vary: config.vary,
  };
}

/** nginx compresses these statuses only (a 206's range would no longer match its body). */
const COMPRESSED_STATUS = new Set([200, 403, 404]);

/** What the decision reads of the request (node's IncomingMessage and the lean and h2 facades all carry it). */
interface RequestFacts {
  readonly method?: string | undefined;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly headers: { readonly 'accept-encoding'?: string | string[] | undefined };
}

/**
 * Whether the client takes gzip: `gzip` or `x-gzip` in Accept-Encoding with a q-value above 0 (RFC 9110 §12.5.3).
 * `*` is not taken for gzip, as nginx does not.
 */
export function acceptsGzip(acceptEncoding: string | string[] | undefined): boolean {
  if (acceptEncoding === undefined) return false;
  const value = typeof acceptEncoding === 'string' ? acceptEncoding : acceptEncoding.join(',');
  for (const item of value.split(',')) {
    const [coding, ...params] = item.split(';');
    const name = coding!.trim().toLowerCase();
    if (name !== 'gzip' && name !== 'x-gzip') continue;
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    if (q > 0) return true;
  }
  return false;
}

/**
 * Decides whether this response is compressed, and if so rewrites its header list (flat name/value pairs, as
 * the exchange sends them) in place: Content-Length and Accept-Ranges removed, Content-Encoding: gzip, a strong
 * ETag made weak (the bytes differ; nginx does the same), `Vary: Accept-Encoding` added or extended. Not
 * compressed: HTTP/1.0 and HEAD requests, clients without gzip, statuses but 200/403/404, responses already
 * encoded, of a type not listed, shorter than `minLength` by their Content-Length, or marked `no-transform`.
 */
export function gzipResponse(settings: GzipSettings, req: RequestFacts, status: number, headers: string[]): boolean {
  if (!COMPRESSED_STATUS.has(status) || req.method === 'HEAD') return false;
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) return false;
  if (!acceptsGzip(req.headers['accept-encoding'])) return false;
  let type: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    const value = headers[i + 1]!;
    if (name === 'content-encoding' && value.trim() !== '' && value.trim().toLowerCase() !== 'identity') return false;
    if (name === 'content-length' && Number(value) < settings.minLength) return false;
    if (name === 'cache-control' && /(^|,)\s*no-transform\s*(,|$)/i.test(value)) return false;
    if (name === 'content-type') type = value.split(';')[0]!.trim().toLowerCase();
  }
  if (type === undefined || !settings.types.has(type)) return false;
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const name = headers[i]!.toLowerCase();
    if (name === 'content-length' || name === 'accept-ranges' || name === 'content-encoding') headers.splice(i, 2);
    else if (name === 'etag' && !headers[i + 1]!.startsWith('W/')) headers[i + 1] = `W/${headers[i + 1]}`;
  }
  headers.push('Content-Encoding', 'gzip');
  if (settings.vary) {
    let vary = -1;
    for (let i = 0; i < headers.length && vary < 0; i += 2) if (headers[i]!.toLowerCase() === 'vary') vary = i;
    if (vary < 0) headers.push('Vary', 'Accept-Encoding');
    else if (!/(^|,)\s*(accept-encoding|\*)\s*(,|$)/i.test(headers[vary + 1]!)) headers[vary + 1] = `${headers[vary + 1]}, Accept-Encoding`;
  }
  return true;
}

/** The compressing stream of one response. */
export function gzipStream(settings: GzipSettings): Gzip {
  // Each upstream chunk is flushed through at once (Z_SYNC_FLUSH): a streamed response (server-sent events, a
  // long poll, a slow page) reaches the client as the upstream sends it, not when 16 KiB of output gathered.
  return createGzip({ level: settings.level, flush: constants.Z_SYNC_FLUSH });
}

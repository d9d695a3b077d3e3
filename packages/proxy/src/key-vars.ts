import type { IncomingMessage } from 'node:http';
import type { KeyVars } from '@tiergate/balancer';
import { stripPort } from './route-table.ts';

/** nginx variables of one request for the `hash` key, each computed only when the template reads it. */
export class RequestKeyVars implements KeyVars {
  readonly requestUri: string;
  readonly remoteAddr: string;
  readonly #req: IncomingMessage;
  #query: URLSearchParams | undefined;

  constructor(req: IncomingMessage, remoteAddr: string) {
    this.#req = req;
    this.requestUri = req.url ?? '/';
    this.remoteAddr = remoteAddr;
  }

  get uri(): string {
    return nginxUri(this.requestUri);
  }

  get host(): string {
    return stripPort((this.#req.headers.host ?? '').toLowerCase());
  }

  header(name: string): string | undefined {
    const v = this.#req.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  }

  cookie(name: string): string | undefined {
    const header = this.#req.headers.cookie;
    if (!header) return undefined;
    for (const part of header.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
    return undefined;
  }

  arg(name: string): string | undefined {
    if (this.#query === undefined) {
      const q = this.requestUri.indexOf('?');
      this.#query = new URLSearchParams(q < 0 ? '' : this.requestUri.slice(q + 1));
    }
    return this.#query.get(name) ?? undefined;
  }
}

/** What can make nginx's `$uri` differ from the raw path: an escape, a fragment, `//`, or a `.` segment. */
const NOT_PLAIN = /[%#]|\/[/.]/;
/** Bytes that are not UTF-8 decode to U+FFFD: nginx keeps the raw byte, only such keys hash differently. */
const utf8 = new TextDecoder();

/**
 * nginx's `$uri` of a request target (ngx_http_parse_complex_uri with merge_slashes on): the path before
 * `?` or `#`, `%XX` decoded, `//` merged, `.` and `..` segments resolved. Decoding comes first, so `%2F` and
 * `%2E` take part in the rest, as in nginx. For a target nginx answers 400 (a malformed escape, `%00`, `..`
 * above the root) it is the raw path: the proxy forwards such targets unchanged, and the key only has to be
 * stable. The hash key is computed per request: a plain path (the usual case) is returned as it is.
 */
export function nginxUri(target: string): string {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (!NOT_PLAIN.test(path)) return path;
  const hash = path.indexOf('#');
  const raw = hash < 0 ? path : path.slice(0, hash);
  const decoded = raw.includes('%') ? percentDecode(raw) : raw;
  const resolved = decoded === undefined ? undefined : resolveSegments(decoded);
  return resolved ?? path;
}

/** `%XX` decoded (as UTF-8), or undefined where nginx refuses the target: a malformed escape or `%00`. */
function percentDecode(path: string): string | undefined {
  const bytes = new Uint8Array(path.length);
  let n = 0;
  for (let i = 0; i < path.length; i++) {
    let byte = path.charCodeAt(i);
    if (byte === 37) {
      const value = (hexDigit(path.charCodeAt(i + 1)) << 4) | hexDigit(path.charCodeAt(i + 2));
      if (value <= 0) return undefined; // a bad digit makes it negative; %00 is 0
      byte = value;
      i += 2;
    }
    bytes[n++] = byte;
  }
  return utf8.decode(bytes.subarray(0, n));
}

/** 0-15, or a large negative number for anything else (so a combined value stays negative). */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -0x1000;
}

/**
 * merge_slashes plus `.` / `..` resolution of a path starting with `/`; a path ending in a dropped or
 * resolved segment keeps its trailing `/` (`/a/b/..` → `/a/`). Undefined when `..` climbs above the root.
 */
function resolveSegments(path: string): string | undefined {
  if (path.charCodeAt(0) !== 47) return undefined;
  const segments = path.split('/');
  const kept: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '..') {
      if (kept.pop() === undefined) return undefined;
    } else if (s !== '' && s !== '.') kept.push(s);
  }
  const last = segments[segments.length - 1];
  const directory = kept.length > 0 && (last === '' || last === '.' || last === '..');
  return `/${kept.join('/')}${directory ? '/' : ''}`;
}

/**
 * The request target as routing sees it and as the upstream gets it (docs/proxy.md, "Paths").
 *
 * Routes match nginx's `$uri`: `%XX` decoded, `//` merged, `.` and `..` resolved (ngx_http_parse_complex_uri
 * with merge_slashes on). Matching the raw path instead would let `/pub/../admin` or `/pub/%2e%2e/admin` take
 * the `/pub` route while the application resolves it to `/admin`. What nginx refuses (a malformed escape,
 * `%00`, `..` above the root) is refused here too, and so is a segment that some upstream would still read
 * as `.` or `..` after nginx's normalisation (`..;` for Tomcat, `..\` where `\` separates).
 *
 * The upstream gets the raw target (nginx `proxy_pass` without a URI) only when every usual reading of it
 * (decoded once or not, `%2F` a separator or not, dots resolved or not, `\` a separator or not, slashes
 * merged or not, the WHATWG URL parser's) names the path routing chose; otherwise it gets the normalised
 * path re-escaped, which reads the same under all of them.
 */

/** What a route forwards upstream: the target as received (when unambiguous) or always the normalised one. */
export type ForwardPath = 'raw' | 'normalized';

/** One origin-form request target, parsed. */
export interface RequestTarget {
  /** The normalised path (nginx `$uri`, UTF-8 decoded): what routes match. */
  readonly path: string;
  /** The normalised path, percent-encoded where RFC 3986 needs it, plus the raw query: `normalized` forwarding. */
  readonly normalized: string;
  /** The raw target names `path` however an upstream reads it, so `raw` forwarding may send it as it came. */
  readonly rawSafe: boolean;
}

/**
 * What can make the normalised path differ from the raw one or make the raw one ambiguous: an escape, a
 * fragment, a backslash, `//`, or a segment starting with `.`. A target without these (the usual case) is
 * its own normalised form and costs one regex test.
 */
const NOT_PLAIN = /[%#\\]|\/[/.]/;
const SLASH = 0x2f;
const DOT = 0x2e;
const BACKSLASH = 0x5c;
const SEMICOLON = 0x3b;
const utf8 = new TextDecoder();

/**
 * The target of a request, or undefined when it is answered 400: not origin-form (absolute-form and `*` are
 * for forward proxies, RFC 9112 §3.2.1), refused by nginx, or left ambiguous by normalisation.
 */
export function parseTarget(url: string): RequestTarget | undefined {
  if (url.charCodeAt(0) !== SLASH) return undefined;
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  if (!NOT_PLAIN.test(rawPath)) return { path: rawPath, normalized: url, rawSafe: true };
  const fragment = rawPath.indexOf('#');
  const decoded = percentDecode(fragment < 0 ? rawPath : rawPath.slice(0, fragment));
  const resolved = decoded && resolveSegments(decoded);
  if (decoded === undefined || resolved === undefined || hasDotLikeSegment(resolved)) return undefined;
  return {
    path: utf8.decode(resolved),
    normalized: q < 0 ? escapePath(resolved) : escapePath(resolved) + url.slice(q),
    // Forwarding raw is safe when normalising only decoded escapes: nothing was resolved, merged or cut, so
    // an upstream that decodes and one that does not both see the same segments. A backslash (raw or
    // decoded) is a separator for the WHATWG URL parser and Windows servers, so it is never sent raw.
    rawSafe: fragment < 0 && decoded.equals(resolved) && !resolved.includes(BACKSLASH),
  };
}

/**
 * `routes[].rewrite_prefix` (nginx `proxy_pass http://pool/uri/;` in `location /prefix/`): the target sent upstream
 * with the route's `prefix` (decoded, as configured) at the start of the normalised path replaced by `replacement`,
 * always in the normalised form (re-escaped), the query as received. undefined when the normalised path does not
 * start with the prefix byte for byte (bytes that are not UTF-8 matched it as U+FFFD): such a request is refused.
 */
export function prefixRewriter(prefix: string, replacement: string): (target: RequestTarget) => string | undefined {
  const escapedPrefix = escapePath(Buffer.from(prefix));
  const to = escapePath(Buffer.from(replacement));
  return (target) => {
    const n = target.normalized;
    if (n.startsWith(escapedPrefix)) return to + n.slice(escapedPrefix.length);
    // A plain target is its own normalised form, as received (no escapes to add or remove).
    if (n.startsWith(prefix)) return to + n.slice(prefix.length);
    return undefined;
  };
}

/**
 * nginx's `$uri` of a request target: the path before `?` (and before a raw `#`), `%XX` decoded, `//` merged,
 * `.` and `..` resolved. For a target nginx answers 400 it is the raw path (such requests are refused before
 * any key is computed; the key only has to be stable). A plain path (the usual case) is returned as it is.
 */
export function nginxUri(target: string): string {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (!NOT_PLAIN.test(path)) return path;
  const hash = path.indexOf('#');
  const decoded = percentDecode(hash < 0 ? path : path.slice(0, hash));
  const resolved = decoded && resolveSegments(decoded);
  // Bytes that are not UTF-8 decode to U+FFFD: nginx keeps the raw byte, only such keys hash differently.
  return resolved === undefined ? path : utf8.decode(resolved);
}

/** `%XX` decoded to bytes, or undefined where nginx refuses the target: a malformed escape or `%00`. */
function percentDecode(path: string): Buffer | undefined {
  const bytes = Buffer.allocUnsafe(path.length);
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
  return bytes.subarray(0, n);
}

/** 0-15, or a large negative number for anything else (so a combined value stays negative). */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -0x1000;
}

/**
 * merge_slashes plus `.` / `..` resolution of a path starting with `/` (decoded, so a `%2F` separates like
 * `/`, as in nginx); a path ending in a dropped or resolved segment keeps its trailing `/` (`/a/b/..` →
 * `/a/`). Undefined when `..` climbs above the root (nginx: 400).
 */
function resolveSegments(path: Buffer): Buffer | undefined {
  if (path[0] !== SLASH) return undefined;
  const kept: Buffer[] = [];
  let last: Buffer | undefined;
  for (let start = 1; start <= path.length; ) {
    let end = path.indexOf(SLASH, start);
    if (end < 0) end = path.length;
    const s = path.subarray(start, end);
    last = s;
    if (isDots(s, 0, s.length) === 2) {
      if (kept.pop() === undefined) return undefined;
    } else if (s.length > 0 && isDots(s, 0, s.length) !== 1) kept.push(s);
    start = end + 1;
  }
  const directory = kept.length > 0 && last !== undefined && (last.length === 0 || isDots(last, 0, last.length) > 0);
  const parts: Buffer[] = [];
  for (const s of kept) parts.push(SLASH_BUF, s);
  if (parts.length === 0 || directory) parts.push(SLASH_BUF);
  return Buffer.concat(parts);
}
const SLASH_BUF = Buffer.from('/');

/** 1 for `.`, 2 for `..`, 0 otherwise, for `b[from, to)`. */
function isDots(b: Uint8Array, from: number, to: number): number {
  const len = to - from;
  if (len === 1 && b[from] === DOT) return 1;
  if (len === 2 && b[from] === DOT && b[from + 1] === DOT) return 2;
  return 0;
}

/**
 * Whether a normalised path still has a segment some upstream reads as `.` or `..`: with `\` as a separator
 * too (the WHATWG URL parser for http, Windows servers), and with `;parameters` cut off (Tomcat and other
 * servlet containers read `/..;x/` as `/../`; the classic path-ACL bypass behind nginx).
 */
function hasDotLikeSegment(path: Buffer): boolean {
  let start = 0;
  let cut = -1; // where a `;` ends the segment's name
  for (let i = 0; i <= path.length; i++) {
    const c = i < path.length ? path[i] : SLASH;
    if (c === SLASH || c === BACKSLASH) {
      if (isDots(path, start, cut < 0 ? i : cut) > 0) return true;
      start = i + 1;
      cut = -1;
    } else if (c === SEMICOLON && cut < 0) cut = i;
  }
  return false;
}

/** RFC 3986 `pchar` plus `/`: sent as they are; every other byte is percent-encoded. */
const SAFE = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") SAFE[c.charCodeAt(0)] = 1;
const HEX = '0123456789ABCDEF';

/**
 * A decoded path as a target again: `%`, `?`, `#`, `\`, spaces, controls and non-ASCII bytes escaped, so one
 * decoding by the upstream gives back exactly the path routing matched (nginx escapes a similar set when
 * `proxy_pass` has a URI part; this one is RFC 3986's, a little wider).
 */
function escapePath(path: Buffer): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (SAFE[c] === 1) continue;
    out += `${path.toString('latin1', from, i)}%${HEX[c >> 4]}${HEX[c & 15]}`;
    from = i + 1;
  }
  return from === 0 ? path.toString('latin1') : out + path.toString('latin1', from);
}

import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { isLoopbackAddress } from './address.ts';

/**
 * Who may call an admin listener (the proxy's `proxy.admin`, the director's `directors[].admin`). Shared by
 * both servers, which may import only config (scripts/check-imports.ts), so the rules cannot drift apart.
 */

/** An `admin` section: where it listens and its optional bearer token. */
export interface AdminAccess {
  readonly address: string;
  readonly token?: string | undefined;
}

/** The parts of a request the checks read (node's IncomingMessage fits). */
export interface AdminRequest {
  readonly method?: string | undefined;
  readonly headers: { readonly host?: string | undefined; readonly origin?: string | undefined; readonly [name: string]: unknown };
  readonly socket: { readonly localAddress?: string | undefined };
}

/** Why a request is refused: 401 without the right token, 403 for a foreign Host or a browser's Origin. */
export interface AdminRefusal {
  readonly status: 401 | 403;
  readonly code: 'TG_ADMIN_UNAUTHORIZED' | 'TG_ADMIN_FORBIDDEN';
  readonly message: string;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || (isIP(address) === 6 && canonicalIPv6(address) === '::');
}

function canonicalIPv6(a: string): string {
  return new URL(`http://[${a}]/`).hostname.slice(1, -1);
}

/** One spelling per address (`::FFFF:127.0.0.1` → `127.0.0.1`, `0:0::1` → `::1`). */
function canonicalIP(a: string): string {
  const v = a.toLowerCase().replace(/^::ffff:(?=\d+\.)/, '');
  return isIP(v) === 6 ? canonicalIPv6(v) : v;
}

/**
 * `Authorization: Bearer <token>` compared in constant time: both sides are hashed first, so the
 * comparison has equal lengths (timingSafeEqual's condition) and its time says nothing about the token,
 * not even its length.
 */
export function bearerTokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m[1]!.trim()), digest(token));
}

/** The host name of a Host header or an Origin's host (no port, IPv6 without brackets); undefined when malformed. */
function hostnameOf(hostPort: string): string | undefined {
  // URL would read `user@host` as credentials, and `/`, `?`, `#`, `\` end the host part: none belongs in a Host.
  if (/[@/?#\\\s]/.test(hostPort)) return undefined;
  try {
    const h = new URL(`http://${hostPort}`).hostname.toLowerCase();
    return h.startsWith('[') ? h.slice(1, -1) : h.replace(/\.$/, '');
  } catch {
    return undefined;
  }
}

/**
 * A name that reaches this admin listener without DNS: its own address (any address when it listens on
 * a wildcard; also the address the connection arrived on), and `localhost` when it listens on loopback
 * or a wildcard. Any other name is what DNS rebinding sends: a page on evil.example whose name then
 * resolves to 127.0.0.1 talks to the listener with `Host: evil.example`.
 */
function isOwnHost(hostname: string, listener: string, localAddress: string | undefined): boolean {
  if (hostname === 'localhost') return isLoopbackAddress(listener) || isWildcard(listener);
  if (isIP(hostname) === 0) return false;
  const h = canonicalIP(hostname);
  return isWildcard(listener) || h === canonicalIP(listener) || (localAddress !== undefined && h === canonicalIP(localAddress));
}

/**
 * The checks every admin request passes before it is routed, in this order:
 * - `Host`, when present, names the listener itself (see isOwnHost): a browser tricked by DNS rebinding
 *   sends the attacker's name. A request without Host (HTTP/1.0 scripts) comes from no browser. A request
 *   with the configured bearer token may use any name (`proxy1:9901` from Prometheus): a rebinding page
 *   cannot know the token, so the check would only lock out operators who use host names.
 * - `Origin`, which browsers add to cross-origin reads and to every POST: a GET may carry only one whose
 *   host passes the same test, a state-changing method (POST /reload, /reconcile) none at all, and no
 *   `Sec-Fetch-Site` either. curl, Prometheus and the tiergate CLI send neither header, so they are not
 *   affected; the only page (`GET /`, admin-page.ts) reads `/status` with same-origin GETs, so no
 *   legitimate browser request changes state.
 * - the bearer token, when configured.
 */
export function checkAdminRequest(req: AdminRequest, admin: AdminAccess): AdminRefusal | undefined {
  const forbidden = (message: string): AdminRefusal => ({ status: 403, code: 'TG_ADMIN_FORBIDDEN', message });
  const { host, origin } = req.headers;
  const local = req.socket.localAddress;
  const token = admin.token;
  const authenticated = token !== undefined && bearerTokenMatches(req.headers.authorization as string | undefined, token);
  if (host !== undefined && !authenticated) {
    const name = hostnameOf(host);
    if (name === undefined || !isOwnHost(name, admin.address, local))
      return forbidden(`Host '${host}' is not this admin listener's address (use its IP address or localhost)`);
  }
  const method = (req.method ?? 'GET').toUpperCase();
  if (method !== 'GET' && method !== 'HEAD') {
    if (origin !== undefined || req.headers['sec-fetch-site'] !== undefined)
      return forbidden(`${method} from a browser is refused (the request carries an Origin)`);
  } else if (origin !== undefined) {
    const name = origin === 'null' ? undefined : hostnameOf(origin.replace(/^https?:\/\//i, ''));
    if (name === undefined || !isOwnHost(name, admin.address, local)) return forbidden(`Origin '${origin}' is refused`);
  }
  if (token !== undefined && !authenticated)
    return { status: 401, code: 'TG_ADMIN_UNAUTHORIZED', message: 'missing or wrong bearer token' };
  return undefined;
}

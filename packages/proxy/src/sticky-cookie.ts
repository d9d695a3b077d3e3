import { createHmac } from 'node:crypto';
import type { DeepReadonly, PoolConfig } from '@tiergate/config';

type StickyConfig = DeepReadonly<NonNullable<PoolConfig['sticky']>>;

const SAME_SITE = { strict: 'Strict', lax: 'Lax', none: 'None' } as const;

/**
 * HAProxy `cookie NAME insert` for one pool. The cookie value names a server by an opaque id that is
 * itself an HMAC-SHA256 (keyed with `secret`) of the pool name and server address, truncated to 128
 * bits: it does not reveal the address, a client cannot forge one for another server without the
 * secret, and every proxy sharing the config (other workers, other nodes behind IPVS) maps it to the
 * same server, across restarts and reloads.
 */
export class StickyCookies {
  readonly name: string;
  readonly #ids: readonly string[];
  readonly #byId: ReadonlyMap<string, number>;
  readonly #attributes: string;

  constructor(pool: string, config: StickyConfig, addresses: readonly string[]) {
    this.name = config.cookie;
    this.#ids = addresses.map((a) =>
      createHmac('sha256', config.secret).update(`tiergate-sticky\0${pool}\0${a}`).digest('base64url').slice(0, 22),
    );
    this.#byId = new Map(this.#ids.map((id, i) => [id, i]));
    let attributes = '; Path=/';
    if (config.max_age !== undefined) attributes += `; Max-Age=${Math.floor(config.max_age / 1000)}`;
    if (config.secure) attributes += '; Secure';
    if (config.http_only) attributes += '; HttpOnly';
    attributes += `; SameSite=${SAME_SITE[config.same_site]}`;
    this.#attributes = attributes;
  }

  /** The server index a request's Cookie header(s) name, or -1 (no cookie, or one this pool did not issue). */
  serverOf(cookieHeader: string | undefined): number {
    if (!cookieHeader) return -1;
    const value = cookieValue(cookieHeader, this.name);
    return value === undefined ? -1 : (this.#byId.get(value) ?? -1);
  }

  /** The `Set-Cookie` value naming server `index`. */
  setCookie(index: number): string {
    return `${this.name}=${this.#ids[index]}${this.#attributes}`;
  }

  /** Removes this cookie from every `Cookie` field of a flat raw header list (in place); drops fields left empty. */
  strip(headers: string[]): void {
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (headers[i]!.length !== 6 || headers[i]!.toLowerCase() !== 'cookie') continue;
      const kept = headers[i + 1]!.split(';').filter((part) => {
        const eq = part.indexOf('=');
        return part.trim() !== '' && (eq < 0 ? part.trim() : part.slice(0, eq).trim()) !== this.name;
      });
      if (kept.length === 0) headers.splice(i, 2);
      else headers[i + 1] = kept.map((p) => p.trim()).join('; ');
    }
  }
}

function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

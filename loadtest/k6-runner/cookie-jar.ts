/**
 * A cookie jar with the RFC 6265 rules the scripts' requests exercise: host-only and Domain cookies, default path
 * and path matching, Max-Age/Expires (deletion when in the past). Not implemented (k6's Go jar has them): the
 * public suffix list and the Secure/HttpOnly restrictions; the runner talks plain HTTP to one host per run.
 */
interface Stored {
  name: string;
  value: string;
  domain: string;
  hostOnly: boolean;
  path: string;
  expires: number;
}

export interface CookieOptions {
  domain?: string;
  path?: string;
  expires?: string;
  max_age?: number;
  secure?: boolean;
  http_only?: boolean;
}

function defaultPath(pathname: string): string {
  const slash = pathname.lastIndexOf('/');
  return slash <= 0 ? '/' : pathname.slice(0, slash);
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  return (
    requestPath === cookiePath ||
    (requestPath.startsWith(cookiePath) && (cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'))
  );
}

export class CookieJar {
  #cookies: Stored[] = [];

  #put(url: URL, name: string, value: string, options: CookieOptions): void {
    const host = url.hostname;
    const domain = options.domain ? options.domain.replace(/^\./, '').toLowerCase() : host;
    const path = options.path?.startsWith('/') ? options.path : defaultPath(url.pathname);
    let expires = Number.POSITIVE_INFINITY;
    if (options.max_age !== undefined) expires = Date.now() + options.max_age * 1000;
    else if (options.expires) expires = Date.parse(options.expires);
    this.#cookies = this.#cookies.filter((c) => !(c.name === name && c.domain === domain && c.path === path));
    if (expires > Date.now()) this.#cookies.push({ name, value, domain, hostOnly: !options.domain, path, expires });
  }

  #matching(url: URL): Stored[] {
    const now = Date.now();
    this.#cookies = this.#cookies.filter((c) => c.expires > now);
    const host = url.hostname;
    return this.#cookies.filter(
      (c) => (c.hostOnly ? host === c.domain : host === c.domain || host.endsWith(`.${c.domain}`)) && pathMatches(url.pathname, c.path),
    );
  }

  /** Applies the Set-Cookie header lines of a response to `url`. */
  storeFromResponse(url: string, lines: readonly string[]): void {
    const u = new URL(url);
    for (const line of lines) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const options: CookieOptions = {};
      for (const attr of attrs) {
        const [k = '', ...rest] = attr.split('=');
        const v = rest.join('=').trim();
        switch (k.trim().toLowerCase()) {
          case 'domain':
            options.domain = v;
            break;
          case 'path':
            options.path = v;
            break;
          case 'max-age':
            options.max_age = Number(v);
            break;
          case 'expires':
            options.expires = v;
            break;
        }
      }
      this.#put(u, pair.slice(0, eq).trim(), pair.slice(eq + 1).trim(), options);
    }
  }

  /** The Cookie header value for a request to `url` ('' when none). */
  headerFor(url: string): string {
    return this.#matching(new URL(url))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  // k6's CookieJar API.
  cookiesForURL(url: string): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const c of this.#matching(new URL(url))) out[c.name] = [...(out[c.name] ?? []), c.value];
    return out;
  }

  set(url: string, name: string, value: string, options: CookieOptions = {}): void {
    this.#put(new URL(url), name, value, options);
  }

  clear(url: string): void {
    const matching = new Set(this.#matching(new URL(url)));
    this.#cookies = this.#cookies.filter((c) => !matching.has(c));
  }

  delete(url: string, name: string): void {
    const matching = new Set(this.#matching(new URL(url)).filter((c) => c.name === name));
    this.#cookies = this.#cookies.filter((c) => !matching.has(c));
  }

  /** Forgets everything (k6 resets each VU's jar at the start of every iteration unless noCookiesReset). */
  reset(): void {
    this.#cookies = [];
  }
}

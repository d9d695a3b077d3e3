import { TgError } from '@tiergate/errors';

/**
 * Host + longest-path-prefix routing, compiled once. Lookup order: the exact host, then `*.suffix`
 * wildcards (longest suffix first), then routes without a host; within each, the longest path
 * prefix that matches wins, and a group with no matching prefix falls through to the next.
 * Hosts are names only, as nginx `server_name`: the table serves every listener, so the Host
 * header's port is ignored and a route host with a port is refused rather than half-honoured.
 */

interface Entry<T> {
  readonly prefix: string;
  readonly value: T;
}

/** One route as the table sees it. */
export interface RouteSpec<T> {
  readonly host?: string | undefined;
  readonly path: string;
  readonly value: T;
}

export class RouteTable<T> {
  readonly #exact = new Map<string, Entry<T>[]>();
  /** `.suffix` (with the leading dot) → entries, longest suffix first. */
  readonly #wildcards: { suffix: string; entries: Entry<T>[] }[] = [];
  readonly #fallback: Entry<T>[] = [];

  constructor(routes: readonly RouteSpec<T>[]) {
    for (const r of routes) {
      const entry = { prefix: r.path, value: r.value };
      const host = r.host === undefined ? undefined : routeHost(r.host);
      if (host === undefined) this.#fallback.push(entry);
      else if (host.startsWith('*.')) {
        const suffix = host.slice(1);
        let group = this.#wildcards.find((w) => w.suffix === suffix);
        if (!group) {
          group = { suffix, entries: [] };
          this.#wildcards.push(group);
        }
        group.entries.push(entry);
      } else {
        const list = this.#exact.get(host) ?? [];
        list.push(entry);
        this.#exact.set(host, list);
      }
    }
    const byLength = (a: Entry<T>, b: Entry<T>) => b.prefix.length - a.prefix.length;
    for (const list of this.#exact.values()) list.sort(byLength);
    for (const w of this.#wildcards) w.entries.sort(byLength);
    this.#wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
    this.#fallback.sort(byLength);
  }

  /** The route for a Host header value (any case, port ignored) and a request path, or undefined. */
  match(hostHeader: string | undefined, path: string): T | undefined {
    if (hostHeader !== undefined && hostHeader !== '') {
      const host = stripPort(hostHeader.toLowerCase());
      const exact = this.#exact.get(host);
      const hit = exact && longestPrefix(exact, path);
      if (hit) return hit.value;
      for (const w of this.#wildcards) {
        if (host.length > w.suffix.length && host.endsWith(w.suffix)) {
          const found = longestPrefix(w.entries, path);
          if (found) return found.value;
        }
      }
    }
    return longestPrefix(this.#fallback, path)?.value;
  }
}

/** A route's host as the table compares it: lower case, no trailing dot; TG_CONFIG_INVALID with a port. */
function routeHost(host: string): string {
  const lower = host.toLowerCase();
  if (lower.includes(':'))
    throw new TgError('TG_CONFIG_INVALID', `route host '${host}': a route host takes no port (routes serve every listener)`);
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function longestPrefix<T>(entries: readonly Entry<T>[], path: string): Entry<T> | undefined {
  for (const e of entries) if (path.startsWith(e.prefix)) return e;
  return undefined;
}

/** `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`; a trailing dot (FQDN form) is dropped. */
export function stripPort(host: string): string {
  let end = host.length;
  const colon = host.lastIndexOf(':');
  if (colon >= 0 && host.indexOf(']') < colon && (host.charCodeAt(0) === 91 || host.indexOf(':') === colon)) end = colon;
  if (end > 0 && host.charCodeAt(end - 1) === 46) end--;
  return end === host.length ? host : host.slice(0, end);
}

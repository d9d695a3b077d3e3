import type { IncomingMessage } from 'node:http';
import type { KeyVars } from '@tiergate/balancer';
import { nginxUri } from './request-target.ts';
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

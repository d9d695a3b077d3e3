import { type Dispatcher, request } from 'undici';

/** A browser stand-in: keeps the cookies the servers set and sends them to whichever server it calls. */
export class Browser {
  readonly cookies = new Map<string, string>();

  async call(url: string, options: { method?: Dispatcher.HttpMethod; json?: unknown; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (options.json !== undefined) headers['content-type'] = 'application/json';
    const res = await request(url, {
      method: options.method ?? (options.json === undefined ? 'GET' : 'POST'),
      headers,
      body: options.json === undefined ? undefined : JSON.stringify(options.json),
    });
    this.#remember(res.headers['set-cookie']);
    const text = await res.body.text();
    const isJson = String(res.headers['content-type']).startsWith('application/json');
    return { status: res.statusCode, headers: res.headers, text, body: isJson ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  }

  #remember(setCookie: string | string[] | undefined): void {
    for (const line of setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const [name, value] = [pair.slice(0, eq), pair.slice(eq + 1)];
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

/** The test's own round-robin balancer: each call returns the next base URL in turn. */
export function roundRobin(urls: readonly string[]): () => string {
  let next = 0;
  return () => urls[next++ % urls.length]!;
}

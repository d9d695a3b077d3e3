import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { validateConfig } from '@tiergate/config';
import { Agent, request } from 'undici';
import { type ProxySection, type ProxyServer, type StartProxyOptions, startProxy } from '../src/index.ts';

/** A real upstream HTTP server on 127.0.0.1, port 0, that records what it saw. */
export interface Upstream extends AsyncDisposable {
  readonly server: Server;
  readonly address: string;
  readonly port: number;
  /** Requests received, in order. */
  readonly seen: IncomingMessage[];
}

export async function startUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void, name = ''): Promise<Upstream> {
  const seen: IncomingMessage[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    seen.push(req);
    if (name) res.setHeader('x-upstream', name);
    handler(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    address: `127.0.0.1:${port}`,
    port,
    seen,
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Replies 200 with the upstream's name as body. */
export function named(name: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    req.on('end', () => res.end(name));
  };
}

/** Validates a proxy section through the real schema (defaults applied, frozen). */
export function proxySection(proxy: Record<string, unknown>): ProxySection {
  const cfg = validateConfig({ version: 1, proxy: { listeners: [{ address: '127.0.0.1', port: 0 }], shutdown_timeout: '2s', ...proxy } });
  return cfg.proxy!;
}

export interface TestProxy extends AsyncDisposable {
  readonly proxy: ProxyServer;
  readonly url: string;
}

export async function startTestProxy(
  proxy: Record<string, unknown>,
  random?: () => number,
  options: StartProxyOptions = {},
): Promise<TestProxy> {
  // No drain grace unless a test asks for one: most tests close the proxy with idle client connections open.
  const opts = { idleCloseGraceMs: 0, ...options };
  const p = await startProxy(proxySection(proxy), random ? { ...opts, random } : opts);
  const a = p.addresses()[0]!;
  return { proxy: p, url: `http://127.0.0.1:${a.port}`, [Symbol.asyncDispose]: () => p.close() };
}

/** A client agent, optionally bound to a local address (127.0.0.2 … to act as another client). */
export function clientAgent(localAddress?: string): Agent & AsyncDisposable {
  const agent = new Agent(localAddress ? { localAddress } : {});
  return Object.assign(agent, { [Symbol.asyncDispose]: () => agent.close() });
}

/** GET (or another method) through the proxy, returning status, headers and the body text. */
export async function fetchText(
  url: string,
  opts: { method?: string; headers?: Record<string, string> | string[]; body?: string; dispatcher?: Agent } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; raw: string[] }> {
  const res = await request(url, {
    method: (opts.method ?? 'GET') as 'GET',
    headers: opts.headers,
    body: opts.body,
    dispatcher: opts.dispatcher,
  });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body, raw: [] };
}

/** Sends raw bytes on a fresh connection and collects everything until the server closes (or `ms`). */
export async function rawExchange(port: number, text: string, ms = 2000): Promise<string> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => s.write(text));
    const timer = setTimeout(() => s.destroy(), ms);
    s.on('data', (c) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

/** nginx-style server entry. */
export function server(u: Upstream, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { address: u.address, ...extra };
}

/** Collects the messages of a diagnostics channel until disposed. */
export function collect<T>(name: string): T[] & Disposable {
  const seen: T[] = [];
  const listener = (m: unknown) => seen.push(m as T);
  subscribe(name, listener);
  return Object.assign(seen, { [Symbol.dispose]: () => void unsubscribe(name, listener) });
}

// Helpers for the proxy operations tests: a real `tiergate proxy` process, real upstreams, a bounded load generator.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, request } from 'undici';

export const BIN = resolve(import.meta.dirname, '../packages/cli/bin/tiergate.js');

/** A loopback upstream that answers `name` after `delayMs`, recording the x-seq header of every request it saw. */
export interface Upstream extends AsyncDisposable {
  readonly address: string;
  readonly seen: Set<string>;
}

export async function startUpstream(name: string, delayMs = 0): Promise<Upstream> {
  const seen = new Set<string>();
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const seq = req.headers['x-seq'];
    if (typeof seq === 'string') seen.add(seq);
    req.resume();
    const reply = () => res.end(name);
    if (delayMs > 0) setTimeout(reply, delayMs);
    else req.on('end', reply);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A temporary directory holding a config file. */
export interface ConfigDir extends Disposable {
  readonly file: string;
  write(yaml: string): void;
}

export function configDir(yaml: string): ConfigDir {
  const dir = mkdtempSync(join(tmpdir(), 'tg-ops-'));
  const file = join(dir, 'tiergate.yaml');
  writeFileSync(file, yaml);
  return { file, write: (y) => writeFileSync(file, y), [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The proxy config the tests use: loopback listener and admin on port 0. */
export function proxyYaml(o: { workers: number; servers: string[]; token?: string; accessLog?: boolean; extra?: string }): string {
  return `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 0 }]
  admin: { address: 127.0.0.1, port: 0${o.token ? `, token: ${o.token}` : ''} }
  workers: ${o.workers}
  shutdown_timeout: 5s
  access_log: ${o.accessLog ?? false}
${o.extra ?? ''}  pools:
    app:
      servers: [${o.servers.map((s) => `{ address: "${s}" }`).join(', ')}]
`;
}

/** A running `tiergate proxy -c FILE` process. */
export interface ProxyProc extends AsyncDisposable {
  readonly child: ChildProcess;
  readonly url: string;
  readonly admin: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
}

/**
 * `wrap`: a command that runs the proxy (e.g. `['prlimit', '--nofile=200:200']`), exec'ing it in place;
 * `env`: added to the environment; `nodeArgs`: node's own options, before the launcher.
 */
export async function startProxyProc(
  file: string,
  timeoutMs = 30_000,
  opts: { wrap?: readonly string[]; env?: Record<string, string>; nodeArgs?: readonly string[] } = {},
): Promise<ProxyProc> {
  const argv = [...(opts.wrap ?? []), process.execPath, ...(opts.nodeArgs ?? []), BIN, 'proxy', '-c', file];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const dispose = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  };
  const deadline = Date.now() + timeoutMs;
  while (!/^admin on (\S+)$/m.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await dispose();
      throw new Error(`tiergate proxy did not start (exit ${child.exitCode}): ${err.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    url: /^listening on (\S+)$/m.exec(out)![1]!,
    admin: /^admin on (\S+)$/m.exec(out)![1]!,
    stdout: () => out,
    stderr: () => err,
    exited,
    [Symbol.asyncDispose]: dispose,
  };
}

/** Runs the real CLI once (bounded). */
export function runCli(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('close', (code) => {
      clearTimeout(t);
      res({ code, stdout, stderr });
    });
  });
}

/** GET on the admin endpoint, JSON or text. */
export async function admin(base: string, path: string, token?: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const r = await request(`${base}${path}`, { method: method as 'GET', headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: r.statusCode, body: await r.body.text() };
}

/** Outcome of a load run. */
export interface LoadResult {
  sent: number;
  ok: number;
  /** Non-200 answers, by status. */
  statuses: Record<number, number>;
  /** Transport errors, with the x-seq of the request. */
  errors: { seq: string; code: string }[];
  /** Loops that stopped because the proxy said Connection: close. */
  sawClose: number;
}

/**
 * `concurrency` loops sending GETs back to back until `stop()`, `maxRequests` in all, or `maxMs`. By
 * default each loop keeps one keep-alive connection and stops on an error or when a response says
 * `Connection: close` (a client of a draining proxy goes elsewhere). With `fresh`, every request opens a
 * new connection and errors do not stop the loop (to see whether the listener ever refuses). Every request
 * carries a unique x-seq and x-request-id so upstreams and the access log can tell which arrived.
 */
export function startLoad(
  url: string,
  opts: { concurrency: number; maxRequests: number; maxMs: number; path?: string; fresh?: boolean; prefix?: string },
): { stop(): void; result: LoadResult; done: Promise<LoadResult> } {
  const r: LoadResult = { sent: 0, ok: 0, statuses: {}, errors: [], sawClose: 0 };
  let stopped = false;
  const deadline = Date.now() + opts.maxMs;
  const loop = async (n: number) => {
    let client = new Client(url, { pipelining: 1, headersTimeout: 5000, bodyTimeout: 5000 });
    try {
      while (!stopped && r.sent < opts.maxRequests && Date.now() < deadline) {
        const seq = `${opts.prefix ?? 'l'}${n}-${r.sent++}`;
        try {
          const headers = { 'x-seq': seq, 'x-request-id': seq };
          const res = await client.request({ method: 'GET', path: opts.path ?? '/', headers, reset: opts.fresh === true });
          await res.body.text();
          if (res.statusCode === 200) r.ok++;
          else r.statuses[res.statusCode] = (r.statuses[res.statusCode] ?? 0) + 1;
          if (res.headers.connection === 'close' && !opts.fresh) {
            r.sawClose++;
            return;
          }
        } catch (err) {
          r.errors.push({ seq, code: (err as { code?: string }).code ?? String(err) });
          if (!opts.fresh) return;
          await client.destroy();
          client = new Client(url, { pipelining: 1, headersTimeout: 5000, bodyTimeout: 5000 });
          await new Promise((res) => setTimeout(res, 5));
        }
      }
    } finally {
      await client.destroy();
    }
  };
  const done = Promise.all(Array.from({ length: opts.concurrency }, (_, i) => loop(i))).then(() => r);
  const stop = () => {
    stopped = true;
  };
  return { stop, result: r, done };
}

/** Waits until `probe` returns true, polling (bounded). */
export async function until(probe: () => Promise<boolean> | boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sums the samples of one metric in Prometheus text whose labels include every `labels` pair. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

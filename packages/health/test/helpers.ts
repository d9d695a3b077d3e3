import { createHook } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real server on 127.0.0.1, port 0; disposing closes it and every connection (even hung ones). */
export interface TestServer extends AsyncDisposable {
  readonly port: number;
  readonly server: Server;
}

export async function listen(server: Server): Promise<TestServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function httpServer(handler: Handler): Promise<TestServer> {
  return listen(createHttpServer(handler));
}

/** A self-signed certificate for 127.0.0.1 / localhost made with the machine's openssl at test time. */
export async function selfSignedCert(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tg-health-cert-'));
  try {
    const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'];
    args.push('-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'));
    try {
      await promisify(execFile)('openssl', args);
    } catch (err) {
      throw new Error('the https tests need the openssl command (apt-get install openssl)', { cause: err });
    }
    return { key: await readFile(join(dir, 'key.pem'), 'utf8'), cert: await readFile(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function httpsServer(handler: Handler): Promise<TestServer> {
  return listen(createHttpsServer(await selfSignedCert(), handler) as unknown as Server);
}

/** A port nothing listens on: bind one, then close it. */
export async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Polls `cond` every 5 ms until true or `ms` passes (then throws with `what`). */
export async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Watches the timers this package's source creates from now on (found by their creation stack, so
 * vitest's own timers do not count) and reports those still pending and keeping the process alive.
 */
export function trackTimers(): Disposable & { pending(): Promise<number> } {
  type Timer = { hasRef(): boolean; _destroyed?: boolean };
  const ours = `${join(import.meta.dirname, '..', 'src')}/`;
  const live = new Map<number, Timer>();
  const hook = createHook({
    init(id, type, _trigger, resource) {
      if (type !== 'Timeout') return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 50;
      const stack = new Error().stack ?? '';
      Error.stackTraceLimit = limit;
      if (stack.includes(ours)) live.set(id, resource as Timer);
    },
    destroy(id) {
      live.delete(id);
    },
  }).enable();
  return {
    // Destroy hooks arrive batched, after the current tick, in no fixed order with our own callbacks; so
    // the Timeout's own `_destroyed` flag (set by clearTimeout and after a one-shot fires) decides.
    pending: async () => {
      await new Promise((r) => setImmediate(r));
      return [...live.values()].filter((t) => t._destroyed !== true && t.hasRef()).length;
    },
    [Symbol.dispose]: () => hook.disable(),
  };
}

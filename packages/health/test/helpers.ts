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
 * Watches the timers created from now on and reports those still pending and keeping the process alive
 * (ref'd). Counting all process timers instead would also see other tests' timers come and go.
 */
export function trackTimers(): Disposable & { pending(): Promise<number> } {
  const live = new Map<number, { hasRef(): boolean }>();
  const hook = createHook({
    init(id, type, _trigger, resource) {
      if (type === 'Timeout') live.set(id, resource as { hasRef(): boolean });
    },
    destroy(id) {
      live.delete(id);
    },
  }).enable();
  return {
    // Node batches destroy hooks and runs them after the current tick; let them arrive before counting.
    pending: async () => {
      await new Promise((r) => setImmediate(r));
      return [...live.values()].filter((t) => t.hasRef()).length;
    },
    [Symbol.dispose]: () => hook.disable(),
  };
}

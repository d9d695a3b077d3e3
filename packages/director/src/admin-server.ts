import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Director } from './reconciler.ts';

export interface AdminServer extends AsyncDisposable {
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The director's admin listener: `GET /status` (JSON, see DirectorStatus), `GET /metrics` (Prometheus text),
 * both from a fresh read of the kernel's table, and `POST /reconcile` (run a full cycle now). With a token, every request needs `Authorization: Bearer <token>`.
 */
export async function startAdminServer(
  director: Director,
  opts: { address: string; port: number; token?: string | undefined },
): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (opts.token !== undefined && req.headers.authorization !== `Bearer ${opts.token}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}\n');
        return;
      }
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/status') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(await director.readStatus())}\n`);
      } else if (req.method === 'GET' && path === '/metrics') {
        await director.readStatus();
        const body = await director.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': director.metrics.registry.contentType }).end(body);
      } else if (req.method === 'POST' && path === '/reconcile') {
        await director.reconcileNow({ full: true });
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(director.lastCycle)}\n`);
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}\n');
      }
    })().catch(() => {
      // Never a stack trace to a client.
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"internal error"}\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { url: `http://${host}:${a.port}`, close, [Symbol.asyncDispose]: close };
}

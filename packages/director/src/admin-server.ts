import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkAdminRequest, isLoopbackAddress, statusPageAccess } from '@tiergate/config';
import { httpStatusOf, isTgError, TgError } from '@tiergate/errors';
import type { Logger } from './logger.ts';
import type { Director } from './reconciler.ts';
import { directorStatusPage } from './status-page.ts';

export interface AdminServer extends AsyncDisposable {
  /** `http://host:port`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Largest JSON body POST /drain and /undrain read. */
const MAX_BODY = 4096;

/** The JSON body of POST /drain and /undrain; TG_ADMIN_BAD_REQUEST when it is not what they take. */
async function readDrainRequest(
  req: AsyncIterable<Buffer>,
): Promise<{ service: string; server: string; timeoutMs?: number; after?: 'remove' | 'keep'; wait?: boolean }> {
  let text = '';
  for await (const chunk of req) {
    text += chunk.toString('utf8');
    if (text.length > MAX_BODY) throw new TgError('TG_ADMIN_BAD_REQUEST', `body larger than ${MAX_BODY} bytes`);
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new TgError('TG_ADMIN_BAD_REQUEST', 'expected a JSON object like {"service":"10.0.0.100:80","server":"10.0.0.11"}');
  }
  const bad = (what: string) => new TgError('TG_ADMIN_BAD_REQUEST', what);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('expected a JSON object');
  const { service, server, timeout_ms: timeoutMs, after, wait } = body;
  if (typeof service !== 'string' || service === '') throw bad('service: expected its name or VIP:PORT');
  if (typeof server !== 'string' || server === '') throw bad('server: expected ADDR or ADDR:PORT');
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && Number.isInteger(timeoutMs) && timeoutMs >= 0))
    throw bad('timeout_ms: expected milliseconds, an integer >= 0');
  if (after !== undefined && after !== 'remove' && after !== 'keep') throw bad("after: expected 'remove' or 'keep'");
  if (wait !== undefined && typeof wait !== 'boolean') throw bad('wait: expected true or false');
  return { service, server, timeoutMs, after, wait };
}

/**
 * The director's admin listener: `GET /` (the live status page, status-page.ts: the table below, redrawn from
 * /status; served without the token, as it holds no data), `GET /status` (JSON, see DirectorStatus), `GET /metrics` (Prometheus text),
 * both from a fresh read of the kernel's table, `POST /reconcile` (run a full cycle now), and `POST /drain` /
 * `POST /undrain` (a real server drained by hand, Director#drain: JSON `{service, server, timeout_ms?, after?,
 * wait?}`; without `wait: false` the answer comes when the drain is over). Every request
 * passes checkAdminRequest (@tiergate/config) first, as the proxy's admin does: a foreign Host or a browser's
 * Origin gets 403, and with a token a request without `Authorization: Bearer <token>` gets 401. An address
 * other than loopback without a token is refused with TG_CONFIG_INVALID (the schema refuses it too).
 */
export async function startAdminServer(
  director: Director,
  /** `metrics: false` (`telemetry.metrics.enabled: false`): /metrics answers 404. */
  opts: { address: string; port: number; token?: string | undefined; metrics?: boolean },
  log?: Pick<Logger, 'warn'>,
): Promise<AdminServer> {
  if (opts.token === undefined && !isLoopbackAddress(opts.address))
    throw new TgError('TG_CONFIG_INVALID', `director admin: a token is required to listen on ${opts.address}, which is not loopback`);
  const server: Server = createServer((req, res) => {
    void (async () => {
      const refused = checkAdminRequest(req, statusPageAccess(req.method, req.url, opts));
      if (refused) {
        if (refused.status === 401) res.setHeader('www-authenticate', 'Bearer realm="tiergate-director"');
        res.writeHead(refused.status, { 'content-type': 'application/json' });
        res.end(
          `${JSON.stringify({ error: refused.status === 401 ? 'unauthorized' : 'forbidden', code: refused.code, message: refused.message })}\n`,
        );
        req.resume();
        return;
      }
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'POST' && (path === '/drain' || path === '/undrain')) {
        const r = await readDrainRequest(req);
        const body =
          path === '/drain'
            ? await director.drain(r.service, r.server, { timeoutMs: r.timeoutMs, after: r.after, wait: r.wait })
            : await director.undrain(r.service, r.server);
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
        return;
      }
      req.resume();
      if ((req.method === 'GET' || req.method === 'HEAD') && path === '/') {
        const page = directorStatusPage();
        res.writeHead(200, page.headers).end(req.method === 'HEAD' ? undefined : page.body);
      } else if (req.method === 'GET' && path === '/status') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(await director.readStatus())}\n`);
      } else if (req.method === 'GET' && path === '/metrics' && opts.metrics === false) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"metrics are off (telemetry.metrics.enabled: false)"}\n');
      } else if (req.method === 'GET' && path === '/metrics') {
        await director.refreshMetrics();
        const body = await director.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': director.metrics.registry.contentType }).end(body);
      } else if (req.method === 'POST' && path === '/reconcile') {
        await director.reconcileNow({ full: true });
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(director.lastCycle)}\n`);
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}\n');
      }
    })().catch((err: unknown) => {
      // Never a stack trace to a client: a TgError's code and message (a bad drain request, an unknown server).
      req.resume();
      if (res.headersSent) return void res.end();
      if (isTgError(err)) {
        res.writeHead(httpStatusOf(err.code), { 'content-type': 'application/json' });
        return void res.end(`${JSON.stringify({ error: err.message, code: err.code, message: err.message })}\n`);
      }
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"internal error"}\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // After listen(), node reports a failed accept() (descriptors exhausted, ENOBUFS…) as 'error' on the
  // server; unheard, it would be an uncaught exception ending the daemon. The socket keeps listening.
  server.on('error', (err: NodeJS.ErrnoException) =>
    log?.warn({ error: { code: err.code, message: err.message } }, 'admin accept failed; still listening'),
  );
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { url: `http://${host}:${a.port}`, close, [Symbol.asyncDispose]: close };
}

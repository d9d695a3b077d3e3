/**
 * The bare undici proxy loop: the floor any Node proxy starts from (loadtest/proxy-bench.ts target `undici`).
 * A node:http server; per request, round robin over one undici Pool per upstream, the client's raw headers plus
 * X-Real-IP / X-Forwarded-For / X-Forwarded-Proto (what the nginx and HAProxy targets add), `dispatch` with a
 * handler that writes the response head and streams the body. No routing, header rules, limits, timeouts,
 * retries, balancer state, request ids, metrics or logs: none of what a gateway does.
 *
 *   node loadtest/bare-undici-proxy.ts PORT UPSTREAM_PORT...
 *   node loadtest/bare-undici-proxy.ts PORT            # no upstream: answers itself (see directBody)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type Dispatcher, Pool } from 'undici';
import { directBody } from './direct-body.ts';

const [port, ...ups] = process.argv.slice(2).map(Number);
const pools = ups.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: 128, pipelining: 1 }));
let next = 0;

class Handler implements Dispatcher.DispatchHandler {
  readonly res: ServerResponse;
  constructor(res: ServerResponse) {
    this.res = res;
  }
  onRequestStart(): void {}
  onResponseStart(c: Dispatcher.DispatchController, status: number): void {
    const raw = c.rawHeaders as Buffer[];
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      const lower = name.toLowerCase();
      if (lower === 'connection' || lower === 'keep-alive' || lower === 'transfer-encoding') continue;
      headers.push(name, raw[i + 1]!.toString('latin1'));
    }
    this.res.writeHead(status, headers);
  }
  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      c.pause();
      this.res.once('drain', () => c.resume());
    }
  }
  onResponseEnd(): void {
    this.res.end();
  }
  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.res.headersSent) this.res.destroy(err);
    else {
      this.res.statusCode = 502;
      this.res.end();
    }
  }
}

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  if (pools.length === 0) {
    const body = directBody(req.url ?? '/');
    res.writeHead(200, ['Content-Type', 'text/plain', 'Content-Length', String(body.length)]);
    res.end(body);
    return;
  }
  const raw = req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    // undici frames a body of unknown length itself (and refuses a Transfer-Encoding header next to one).
    if (lower === 'connection' || lower === 'keep-alive' || lower === 'transfer-encoding') continue;
    headers.push(raw[i]!, raw[i + 1]!);
  }
  const peer = req.socket.remoteAddress ?? '';
  headers.push('X-Real-IP', peer, 'X-Forwarded-For', peer, 'X-Forwarded-Proto', 'http');
  const pool = pools[next]!;
  next = (next + 1) % pools.length;
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.dispatch({ method: req.method as Dispatcher.HttpMethod, path: req.url!, headers, body: hasBody ? req : null }, new Handler(res));
});
server.keepAliveTimeout = 75_000;
server.listen(port, '127.0.0.1');
// Exit at once (and so write a --cpu-prof profile): nothing here needs draining.
process.once('SIGTERM', () => process.exit(0));

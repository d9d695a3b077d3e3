/**
 * Shared parts of the hostile-input suites: raw bytes on a TCP (or unix) socket, upstreams that record what
 * reached them, and a real nginx (Debian's nginx-light, run as the balancer's conformance test runs it:
 * master_process off, unix sockets, a temporary prefix) as the oracle for the cases where tiergate means
 * to agree with it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type NetConnectOpts, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX = '/usr/sbin/nginx';

/** One request as an upstream received it. */
export interface Seen {
  /** The recorder's name. */
  readonly server: string;
  /** `METHOD target` as on the request line the upstream parsed. */
  readonly line: string;
  readonly rawHeaders: readonly string[];
  body: string;
  /** The whole body arrived (false: the connection was cut mid-body). */
  complete: boolean;
}

/** A real upstream on 127.0.0.1, port 0, that records every request and answers `200 <name>`. */
export interface Recorder extends AsyncDisposable {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly seen: Seen[];
}

/** `log`: a list shared by several recorders, to see the order across them. */
export async function startRecorder(name: string, log?: Seen[]): Promise<Recorder> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
    const s: Seen = { server: name, line: `${req.method} ${req.url}`, rawHeaders: req.rawHeaders, body: '', complete: false };
    seen.push(s);
    log?.push(s);
    req.setEncoding('latin1');
    req.on('data', (c: string) => {
      s.body += c;
    });
    req.on('end', () => {
      s.complete = true;
      res.writeHead(200, { 'content-length': name.length, 'content-type': 'text/plain' }).end(name);
    });
  });
  // Header floods reach the upstream only if the proxy passed them on: no count limit here.
  server.maxHeadersCount = 0;
  server.on('connection', (c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    address: `127.0.0.1:${port}`,
    port,
    seen,
    async [Symbol.asyncDispose]() {
      for (const c of sockets) c.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** What one connection got back. */
export interface Reply {
  /** Status of every response on the connection, in order (a smuggled request would add one). */
  readonly statuses: number[];
  /** The server closed the connection (within the wait). */
  readonly closed: boolean;
  readonly text: string;
}

/**
 * Writes `bytes` (latin1) on a fresh connection and reads until the server closes it, or until `settleMs`
 * pass without a byte after something arrived (a keep-alive answer), or `maxMs` in all. The client never
 * half-closes: node aborts requests in flight on a client FIN, which would hide what the proxy does.
 */
export function sendRaw(to: NetConnectOpts, bytes: string | Buffer, settleMs = 250, maxMs = 3000): Promise<Reply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    const s = connect(to, () => s.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes));
    let settle: NodeJS.Timeout | undefined;
    const hard = setTimeout(() => s.destroy(), maxMs);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      clearTimeout(settle);
      settle = setTimeout(() => s.destroy(), settleMs);
    });
    s.on('end', () => {
      closed = true;
    });
    // A reset after the answer (the server closed with unread bytes) is a close too.
    s.on('error', () => {
      closed = true;
    });
    s.on('close', () => {
      clearTimeout(settle);
      clearTimeout(hard);
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ statuses, closed, text });
    });
  });
}

/** A running nginx with its prefix directory; `sock(name)` is the path of one of its unix listeners. */
export interface Nginx extends AsyncDisposable {
  sock(name: string): string;
}

/** Starts nginx with `http { … }` contents `httpBlock` (its listeners are `unix:${dir}/<name>.sock`). */
export async function startNginx(httpBlock: (dir: string) => string, sockets: readonly string[]): Promise<Nginx> {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found: install Debian's nginx-light (apt-get install nginx-light)`);
  const dir = mkdtempSync(join(tmpdir(), 'tg-nginx-hostile-'));
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp-${t};`).join('\n');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;\nmaster_process off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log info;
events { worker_connections 64; }
http {\n  access_log off;\n${temp}\n${httpBlock(dir)}\n}\n`,
  );
  const nginx: ChildProcess = spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], {
    stdio: 'ignore',
  });
  const exited = new Promise<never>((_, reject) => nginx.once('exit', (code) => reject(new Error(`nginx exited with ${code}`))));
  exited.catch(() => {});
  const paths = sockets.map((s) => join(dir, `${s}.sock`));
  const ready = (async () => {
    for (let t = 0; t < 100 && !paths.every(existsSync); t++) await new Promise((r) => setTimeout(r, 50));
    if (!paths.every(existsSync)) throw new Error('nginx did not create its sockets in 5 s');
  })();
  await Promise.race([ready, exited]);
  return {
    sock: (name) => join(dir, `${name}.sock`),
    async [Symbol.asyncDispose]() {
      if (nginx.pid !== undefined && nginx.exitCode === null) {
        const gone = new Promise((r) => nginx.once('exit', r));
        nginx.kill('SIGTERM');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `$uri` against the real thing: a real nginx (Debian's nginx-light, as the balancer's conformance test
 * runs it: master_process off, unix sockets) answers `return 200 "$uri"` for each tricky target, and our
 * `nginxUri` (and the path routes match) must give the same bytes. Then the same targets go through nginx `hash $uri` and through a
 * tiergate proxy with `hash_key: $uri` in front of the same upstreams: both must pick the same server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type NetConnectOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxUri, parseTarget } from '../src/request-target.ts';
import { startTestProxy, type TestProxy } from './helpers.ts';

const NGINX = '/usr/sbin/nginx';
/** What nginx 1.22 answered for each target (`400` where it refuses the request); the test re-checks it live. */
const CASES: readonly (readonly [target: string, nginx: string | 400])[] = [
  ['/plain/path.html?x=1', '/plain/path.html'],
  ['/a//b', '/a/b'],
  ['/a/./b', '/a/b'],
  ['/a/b/../c', '/a/c'],
  ['/%41%2Fb', '/A/b'],
  ['/a%20b', '/a b'],
  ['/..', 400],
  ['/a/%2e%2e/b', '/b'],
  ['/a/.', '/a/'],
  ['/a/b/..', '/a/'],
  ['/a/..', '/'],
  ['/.', '/'],
  ['/./', '/'],
  ['//', '/'],
  ['/a%2F%2E%2E/b', '/b'],
  ['/a%2f..%2fb', '/b'],
  ['/a//..//b', '/b'],
  ['/a/../../b', 400],
  ['/%2E%2E', 400],
  ['/a/..%2F..%2Fb', 400],
  ['/a%zz', 400],
  ['/a%2', 400],
  ['/a%00b', 400],
  ['/%25', '/%'],
  ['/%2541', '/%41'],
  ['/a/%3F/b', '/a/?/b'],
  ['/a%3Fb?c', '/a?b'],
  ['/%23x', '/#x'],
  ['/a#b?x', '/a'],
  ['/a/.#x', '/a/'],
  ['/a/b/..?q', '/a/'],
  ['/a?x=//', '/a'],
  ['/.hidden/..x/...', '/.hidden/..x/...'],
  ['/%C3%A9t%C3%A9', '/été'],
  ['/a+b', '/a+b'],
  ['/a\\b', '/a\\b'],
];
const UPSTREAMS = 5;
/**
 * `proxy_pass` with a URI part (tiergate `rewrite_prefix`): location → URI, and targets whose forwarded form both must
 * agree on (what the upstream receives, byte for byte).
 */
const REWRITES: readonly (readonly [location: string, uri: string])[] = [
  ['/api/', '/v1/'],
  ['/static/', '/'],
  ['/app', '/'],
  ['/x/', '/y'],
];
const REWRITE_TARGETS: readonly string[] = [
  '/api/users?x=1',
  '/api/',
  '/api/a%2Fb?q=%2F',
  '/api/../api/x',
  '/api//a/./b',
  '/api/%7e%41',
  '/api/caf%C3%A9',
  '/api/a%20b',
  '/api/a%25b',
  '/api/a;b,c',
  '/api/a+b',
  '/static/css/a.css',
  '/app/x',
  '/apple',
  '/x/z',
];

let dir = '';
let nginx: ChildProcess | undefined;
const upstreams: Server[] = [];
const ports: number[] = [];
/** Answers with the request target it received. */
let echo: Server | undefined;
let echoPort = 0;

function nginxConfig(): string {
  const servers = ports.map((p) => `    server 127.0.0.1:${p};`).join('\n');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp-${t};`).join('\n');
  return `daemon off;\nmaster_process off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;
events { worker_connections 64; }
http {\n  access_log off;\n${temp}
  upstream by_uri {\n    hash $uri;\n${servers}\n  }
  server { listen unix:${dir}/uri.sock; location / { return 200 "$uri"; } }
  server { listen unix:${dir}/hash.sock; location / { proxy_pass http://by_uri; } }
  upstream echo {\n    server 127.0.0.1:${echoPort};\n  }
  server { listen unix:${dir}/rewrite.sock;
${REWRITES.map(([location, uri]) => `    location ${location} { proxy_pass http://echo${uri}; }`).join('\n')}
  }
}\n`;
}

/** One GET with the target exactly as given (no client-side URL parsing), on a fresh connection. */
function get(to: NetConnectOpts, target: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(to, () => s.write(`GET ${target} HTTP/1.1\r\nHost: uri.test\r\nConnection: close\r\n\r\n`));
    s.setTimeout(5_000, () => s.destroy(new Error(`no answer to ${target} in 5 s`)));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => {
      const all = Buffer.concat(chunks);
      const head = all.indexOf('\r\n\r\n');
      resolve({ status: Number(all.subarray(9, 12).toString('latin1')), body: all.subarray(head + 4) });
    });
  });
}

beforeAll(async () => {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found: install Debian's nginx-light (apt-get install nginx-light)`);
  for (let k = 0; k < UPSTREAMS; k++) {
    // A Content-Length, so nginx does not chunk the answer (it asks upstreams in HTTP/1.0).
    const s = createServer((_req, res) => res.writeHead(200, { 'content-length': String(k).length }).end(String(k)));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    upstreams.push(s);
    ports.push((s.address() as AddressInfo).port);
  }
  echo = createServer((req, res) => res.writeHead(200, { 'content-length': Buffer.byteLength(req.url ?? '') }).end(req.url));
  await new Promise<void>((r) => echo!.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as AddressInfo).port;
  dir = mkdtempSync(join(tmpdir(), 'tg-nginx-uri-'));
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig());
  nginx = spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const exited = new Promise<never>((_, reject) => nginx!.once('exit', (code) => reject(new Error(`nginx exited with ${code}`))));
  const sockets = ['uri.sock', 'hash.sock', 'rewrite.sock'].map((f) => join(dir, f));
  const ready = (async () => {
    for (let t = 0; t < 100 && !sockets.every(existsSync); t++) await new Promise((r) => setTimeout(r, 50));
    if (!sockets.every(existsSync)) throw new Error('nginx did not create its sockets in 5 s');
  })();
  await Promise.race([ready, exited]);
});

afterAll(async () => {
  if (nginx?.pid !== undefined && nginx.exitCode === null) {
    const gone = new Promise((r) => nginx!.once('exit', r));
    nginx.kill('SIGTERM');
    await gone;
  }
  await Promise.all([...upstreams, ...(echo ? [echo] : [])].map((s) => new Promise((r) => s.close(r))));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('$uri equals nginx', () => {
  it.each(CASES)('%s → %s', async (target, expected) => {
    const real = await get({ path: join(dir, 'uri.sock') }, target);
    if (expected === 400) {
      expect(real.status).toBe(400);
      // tiergate refuses such a target too (routing); the key function alone returns the raw path.
      expect(parseTarget(target)).toBeUndefined();
      expect(nginxUri(target)).toBe(target.split('?')[0]);
    } else {
      expect({ status: real.status, uri: real.body.toString('utf8') }).toEqual({ status: 200, uri: expected });
      expect(nginxUri(target)).toBe(expected);
      // Routes match the same path.
      expect(parseTarget(target)?.path).toBe(expected);
    }
  });

  it('differs only in bytes that are not UTF-8: nginx keeps the byte, the key string has U+FFFD', async () => {
    const real = await get({ path: join(dir, 'uri.sock') }, '/%FF');
    expect(real.body).toEqual(Buffer.from([0x2f, 0xff]));
    expect(nginxUri('/%FF')).toBe('/\uFFFD');
  });
});

describe('hash $uri through a tiergate proxy picks what nginx picks', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    const servers = ports.map((p) => ({ address: `127.0.0.1:${p}` }));
    proxy = await startTestProxy({ pools: { app: { algorithm: 'hash', hash_key: '$uri', servers } } });
  });
  afterAll(() => proxy[Symbol.asyncDispose]());

  it('for every target nginx accepts', async () => {
    const port = Number(new URL(proxy.url).port);
    const picks: Record<string, { nginx: string; tiergate: string }> = {};
    for (const [target, expected] of CASES) {
      if (expected === 400) continue;
      const viaNginx = await get({ path: join(dir, 'hash.sock') }, target);
      const viaTiergate = await get({ port, host: '127.0.0.1' }, target);
      expect([viaNginx.status, viaTiergate.status], target).toEqual([200, 200]);
      picks[target] = { nginx: viaNginx.body.toString(), tiergate: viaTiergate.body.toString() };
    }
    for (const [target, p] of Object.entries(picks)) expect(p.tiergate, target).toBe(p.nginx);
    // Not one server for everything: the keys do spread, so the comparison above can tell keys apart.
    expect(new Set(Object.values(picks).map((p) => p.nginx)).size).toBeGreaterThan(2);
  });
});

describe('rewrite_prefix sends what nginx proxy_pass with a URI sends', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startTestProxy({
      routes: REWRITES.map(([path, uri]) => ({ path, pool: 'echo', rewrite_prefix: uri })),
      pools: { echo: { servers: [{ address: `127.0.0.1:${echoPort}` }] } },
    });
  });
  afterAll(() => proxy[Symbol.asyncDispose]());

  it('for every target', async () => {
    const port = Number(new URL(proxy.url).port);
    const sent: Record<string, { nginx: string; tiergate: string }> = {};
    for (const target of REWRITE_TARGETS) {
      const viaNginx = await get({ path: join(dir, 'rewrite.sock') }, target);
      const viaTiergate = await get({ port, host: '127.0.0.1' }, target);
      expect([viaNginx.status, viaTiergate.status], target).toEqual([200, 200]);
      sent[target] = { nginx: viaNginx.body.toString('latin1'), tiergate: viaTiergate.body.toString('latin1') };
    }
    expect(Object.fromEntries(Object.entries(sent).map(([t, s]) => [t, s.tiergate]))).toEqual(
      Object.fromEntries(Object.entries(sent).map(([t, s]) => [t, s.nginx])),
    );
    // The prefix was replaced (not the target passed through).
    expect(sent['/api/users?x=1']!.nginx).toBe('/v1/users?x=1');
  });
});

/**
 * Conformance with the real thing: the same upstreams configured in a real nginx (Debian's
 * nginx-light, run unprivileged-style with master_process off, listening on unix sockets) and in
 * our balancers must pick the same servers for the same requests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlgorithmName, BalancerOptions, ServerSpec } from '../src/index.ts';
import { make, request, seededRandom, server } from './helpers.ts';

const NGINX = '/usr/sbin/nginx';
const upstreams: Server[] = [];
const ports: number[] = [];
let dir = '';
let nginx: ChildProcess | undefined;

interface Pool {
  name: string;
  directive: string;
  weights: number[];
  /** Indices configured `down`. */
  down?: number[];
  extra?: string;
}
const POOLS: Pool[] = [
  { name: 'w511', directive: '', weights: [5, 1, 1] },
  { name: 'w421', directive: '', weights: [4, 2, 1] },
  { name: 'lc', directive: 'least_conn;', weights: [3, 1, 2] },
  { name: 'hmod', directive: 'hash $arg_k;', weights: [2, 3, 1, 1] },
  { name: 'hring', directive: 'hash $arg_k consistent;', weights: [1, 1, 2, 1, 1] },
  { name: 'hringdown', directive: 'hash $arg_k consistent;', weights: [1, 1, 2, 1, 1], down: [2] },
  { name: 'iph', directive: 'ip_hash;', weights: [1, 2, 1, 1], extra: 'set_real_ip_from unix:; real_ip_header X-Real-IP;' },
  { name: 'iphdown', directive: 'ip_hash;', weights: [1, 2, 1, 1], down: [1], extra: 'set_real_ip_from unix:; real_ip_header X-Real-IP;' },
];

const specs = (pool: Pool): ServerSpec[] =>
  pool.weights.map((weight, k) => server(`127.0.0.1:${ports[k]}`, { weight, down: pool.down?.includes(k) ?? false }));

function config(): string {
  const blocks = POOLS.map((p) => {
    const lines = p.weights.map((w, k) => `    server 127.0.0.1:${ports[k]} weight=${w}${p.down?.includes(k) ? ' down' : ''};`).join('\n');
    return `  upstream ${p.name} {\n    ${p.directive}\n${lines}\n  }
  server {
    listen unix:${dir}/${p.name}.sock;
    ${p.extra ?? ''}
    location / { proxy_pass http://${p.name}; }
  }`;
  });
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp-${t};`).join('\n');
  return `daemon off;\nmaster_process off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;
events { worker_connections 64; }
http {\n  access_log off;\n${temp}\n${blocks.join('\n')}\n}\n`;
}

/** Which upstream served `path` through nginx pool `pool`. */
function viaNginx(pool: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ socketPath: join(dir, `${pool}.sock`), path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(body)) : reject(new Error(`nginx ${pool}: ${res.statusCode} ${body}`))));
    }).on('error', reject);
  });
}

function ours(algorithm: AlgorithmName, pool: Pool, options: Partial<BalancerOptions> = {}) {
  const b = make(algorithm, specs(pool), options);
  return (clientAddress: string, hashKey: string) => {
    const i = b.pick(request({ clientAddress, hashKey }), 0);
    b.release(i, { failed: false, latencyMs: 1 }, 0);
    return i;
  };
}

beforeAll(async () => {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found: install Debian's nginx-light (apt-get install nginx-light)`);
  for (let k = 0; k < 5; k++) {
    const s = createServer((_req, res) => res.end(String(k)));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    upstreams.push(s);
    ports.push((s.address() as AddressInfo).port);
  }
  dir = mkdtempSync(join(tmpdir(), 'tg-nginx-'));
  writeFileSync(join(dir, 'nginx.conf'), config());
  nginx = spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const exited = new Promise<never>((_, reject) => nginx!.once('exit', (code) => reject(new Error(`nginx exited with ${code}`))));
  const ready = (async () => {
    for (let t = 0; t < 100 && !POOLS.every((p) => existsSync(join(dir, `${p.name}.sock`))); t++)
      await new Promise((r) => setTimeout(r, 50));
    if (!POOLS.every((p) => existsSync(join(dir, `${p.name}.sock`)))) throw new Error('nginx did not create its sockets in 5 s');
  })();
  await Promise.race([ready, exited]);
});

afterAll(async () => {
  if (nginx?.pid !== undefined && nginx.exitCode === null) {
    const gone = new Promise((r) => nginx!.once('exit', r));
    nginx.kill('SIGTERM');
    await gone;
  }
  await Promise.all(upstreams.map((s) => new Promise((r) => s.close(r))));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('picks equal a real nginx', () => {
  it.each([
    ['w511', 'weighted'],
    ['w421', 'weighted'],
    ['lc', 'least_conn'],
  ] as const)('%s: sequence of 21 sequential requests (%s)', async (name, algorithm) => {
    const pool = POOLS.find((p) => p.name === name)!;
    const pick = ours(algorithm, pool);
    const expected: number[] = [];
    const actual: number[] = [];
    for (let k = 0; k < 21; k++) {
      expected.push(pick('', ''));
      actual.push(await viaNginx(name, '/'));
    }
    expect(actual).toEqual(expected);
  });

  it.each([
    ['hmod', false],
    ['hring', true],
    ['hringdown', true],
  ] as const)('%s: 200 keys land on the same servers (consistent=%s)', async (name, consistent) => {
    const pool = POOLS.find((p) => p.name === name)!;
    const pick = ours('hash', pool, { consistent });
    const r = seededRandom(99);
    for (let k = 0; k < 200; k++) {
      const key = `key-${Math.floor(r() * 1e9)}`;
      expect(await viaNginx(name, `/?k=${key}`), key).toBe(pick('', key));
    }
  });

  it.each(['iph', 'iphdown'])('%s: 200 IPv4 and IPv6 clients land on the same servers', async (name) => {
    const pool = POOLS.find((p) => p.name === name)!;
    const pick = ours('ip_hash', pool);
    const r = seededRandom(5);
    const byte = () => Math.floor(r() * 256);
    for (let k = 0; k < 200; k++) {
      const addr = k % 2 === 0 ? `${byte()}.${byte()}.${byte()}.${byte()}` : `2001:db8:${byte().toString(16)}::${byte().toString(16)}`;
      expect(await viaNginx(name, '/', { 'X-Real-IP': addr }), addr).toBe(pick(addr, ''));
    }
  });
});

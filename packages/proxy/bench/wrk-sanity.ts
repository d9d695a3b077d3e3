// Bounded local sanity run: a hello-world upstream (own process), the proxy (this process), and
// `wrk -t1 -c50 -d5s` against the proxy and then the upstream directly, on loopback.
// Run: node packages/proxy/bench/wrk-sanity.ts   (needs Debian's wrk)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { validateConfig } from '@tiergate/config';
import { startProxy } from '../src/index.ts';

const upstream = spawn(
  process.execPath,
  ['-e', "const s=require('http').createServer((q,r)=>r.end('hello world')).listen(0,'127.0.0.1',()=>console.log(s.address().port))"],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const [line] = (await once(upstream.stdout, 'data')) as [Buffer];
const upstreamPort = Number(line.toString().trim());
const cfg = validateConfig({
  version: 1,
  proxy: {
    listeners: [{ address: '127.0.0.1', port: 0 }],
    access_log: false,
    pools: { app: { servers: [{ address: `127.0.0.1:${upstreamPort}` }] } },
  },
});
await using proxy = await startProxy(cfg.proxy!);
const port = proxy.addresses()[0]!.port;
const wrk = (url: string) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', (process.env.WRK_ARGS ?? '-t1 -c50 -d5s').split(' ').concat(url), { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('exit', () => resolve(out));
  });
console.log(`through the proxy:\n${await wrk(`http://127.0.0.1:${port}/`)}`);
console.log(`upstream directly:\n${await wrk(`http://127.0.0.1:${upstreamPort}/`)}`);
upstream.kill();

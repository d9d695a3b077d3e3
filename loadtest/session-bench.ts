/**
 * What the shared session store costs: the demo app (`tiergate demo-app`, the process `tiergate up`
 * runs) with the Redis store next to the same app with the in-process memory store, driven by wrk.
 * The route is GET /captcha (JSON): every request reads its session and writes a new captcha code
 * into it, so each one is a session read plus a session write. 50 connections rotate over 50
 * sessions (one per simulated client). Prints req/s and p50/p99 per store and the p99 Redis adds.
 *
 *   node loadtest/session-bench.ts [--duration 10] [--warmup 2] [--connections 50]
 *
 * CPU placement (2 cores): the app on core 0; wrk and redis-server on core 1. Loopback only; each run
 * is bounded by --duration. Not part of `npm test`: performance is measured, not asserted.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startRedis } from '@tiergate/testkit';
import { parse, stringify } from 'yaml';
import { benchWorkspace, runWrk, stopChild, type WrkResult } from './lib.ts';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
  },
});
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const CONNS = Number(args.connections);
const LAUNCHER = join(root, 'packages/cli/bin/tiergate.js');

const { dir: work, children } = benchWorkspace('tg-session-bench-');

const stop = (c: ChildProcess) => stopChild(c);
const wrk = (url: string, seconds: number, script: string) => runWrk({ url, seconds, connections: CONNS, script });

/** One `tiergate demo-app` on core 0; resolves once /healthz answers. */
async function startApp(config: string, store: 'redis' | 'memory'): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const argv = ['-c', '0', process.execPath, LAUNCHER, 'demo-app', '--port', String(port), '--instance', store, '-c', config];
  // --demo: the JSON captcha this bench requests (without it the app answers with the SVG image).
  const child = spawn('taskset', [...argv, '--store', store, '--demo'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`demo-app (${store}) exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { url, child };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`demo-app (${store}) did not answer within 20 s`);
}

/** A wrk script that sends GET /captcha as JSON, rotating over one session cookie per connection. */
async function sessionScript(url: string, name: string): Promise<string> {
  const cookies: string[] = [];
  for (let i = 0; i < CONNS; i++) {
    const r = await fetch(`${url}/captcha`, { headers: { accept: 'application/json' } });
    await r.arrayBuffer();
    const cookie = r.headers.getSetCookie()[0]?.split(';')[0];
    if (!cookie) throw new Error('the demo app set no session cookie');
    cookies.push(cookie);
  }
  const file = join(work, `${name}.lua`);
  writeFileSync(
    file,
    `local cookies = { ${cookies.map((c) => `"${c}"`).join(', ')} }
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/captcha", { ["Accept"] = "application/json", ["Cookie"] = cookies[(i % #cookies) + 1] })
end
`,
  );
  return file;
}

// ---------------------------------------------------------------- run

await using redis = await startRedis({ args: [] });
spawn('taskset', ['-pc', '1', String(redis.pid)], { stdio: 'ignore' });
const doc = parse(readFileSync(join(root, 'examples/local-stack.yaml'), 'utf8'));
doc.sessions.redis.url = redis.url;
doc.telemetry.logs.level = 'warn';
const config = join(work, 'tiergate.yaml');
writeFileSync(config, stringify(doc));

const results: Record<string, WrkResult> = {};
for (const store of ['memory', 'redis'] as const) {
  const app = await startApp(config, store);
  const script = await sessionScript(app.url, store);
  if (WARMUP > 0) await wrk(`${app.url}/captcha`, WARMUP, script);
  results[store] = await wrk(`${app.url}/captcha`, DURATION, script);
  await stop(app.child);
}

const fmt = (n: number) => n.toFixed(2).padStart(8);
console.log(`\nGET /captcha (session read + write), ${CONNS} connections, ${DURATION} s each, app on core 0, wrk + redis on core 1\n`);
console.log('store      req/s     p50 ms   p99 ms   errors  non-2xx');
for (const [store, r] of Object.entries(results)) {
  console.log(
    `${store.padEnd(8)} ${r.rps.toFixed(0).padStart(7)} ${fmt(r.p50ms)} ${fmt(r.p99ms)} ${String(r.errors).padStart(8)} ${String(r.non2xx).padStart(8)}`,
  );
}
const added = results.redis!.p99ms - results.memory!.p99ms;
const ratio = results.redis!.rps / results.memory!.rps;
console.log(`\nRedis adds ${added.toFixed(2)} ms at p99 and runs at ${(ratio * 100).toFixed(0)} % of the memory store's req/s.`);

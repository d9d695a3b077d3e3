/**
 * New TLS handshakes per second: `tiergate proxy` next to Debian's nginx, one worker each, the same
 * certificate, the same Mozilla "intermediate" settings, driven by the same load generator.
 *
 *   node loadtest/tls-handshake-bench.ts [--duration 10] [--warmup 3] [--connections 50] [--keys rsa2048,p256]
 *                                        [--targets nginx,tiergate,node]
 *
 * Every request is a new TCP connection and a full handshake: wrk sends `Connection: close` and reconnects
 * after each response; both servers run with session tickets off and no session cache, so nothing can be
 * resumed whatever the client keeps. The request is `GET /healthz`, answered by the server itself (tiergate's
 * monitor_uri, nginx `return 200`): what is measured is accept + handshake + one tiny exchange + close, not
 * proxying. CPU placement (2 cores): the server on core 0, wrk on core 1. With an RSA-2048 key the server's
 * private-key signature (~1 ms) dwarfs the client's work (verify ~30 µs, and wrk does not even verify), so one
 * client core saturates the server core; with P-256 both sides cost about the same and the client may be the
 * limit (the report says when the server was not busy: its CPU share under ~90 %).
 * Reported per key type and target: handshakes/s, server CPU µs per handshake (utime+stime of its process
 * tree over the run, /proc) and its inverse (handshakes per second one fully busy core would make), the
 * server's CPU share, and both ratios to nginx. On a loaded machine (the load average is printed first)
 * handshakes/s follows the scheduler; the CPU per handshake is the figure that compares the servers.
 * Loopback only, bounded by --duration.
 * Target `node`: a bare node:https server with the same settings answering every request (the floor for any
 * node TLS server on this machine). Not part of `npm test`: performance is measured, not asserted.
 */

import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '@tiergate/testkit';
import { benchWorkspace, runWrk, stopChild, treeCpuSeconds, type WrkResult } from './lib.ts';

const root = resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    keys: { type: 'string', default: 'rsa2048,p256' },
    targets: { type: 'string', default: 'nginx,tiergate' },
  },
});
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const CONNS = Number(args.connections);
const KEYS = args.keys.split(',');
const TARGETS = args.targets.split(',');
/** Mozilla intermediate (as tiergate's defaults, packages/config/src/schema.ts), written out for nginx. */
const CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:' +
  'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305';
const { dir: work, start } = benchWorkspace('tg-tls-handshake-bench-');

const KEY_ARGS: Record<string, string[]> = {
  rsa2048: ['-newkey', 'rsa:2048'],
  p256: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
};
for (const k of KEYS) {
  if (!KEY_ARGS[k]) throw new Error(`--keys: unknown key type ${k} (rsa2048, p256)`);
  execFileSync(
    'openssl',
    ['req', '-x509', ...KEY_ARGS[k], '-nodes', '-days', '1', '-subj', '/CN=bench.test'].concat([
      '-keyout',
      join(work, `${k}.key`),
      '-out',
      join(work, `${k}.pem`),
    ]),
    { stdio: 'ignore' },
  );
  chmodSync(join(work, `${k}.key`), 0o644);
}

async function waitForTls(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const { connect } = await import('node:tls');
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no TLS listener on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** One wrk run with `Connection: close` (a new connection per request), 1 thread on core 1, bounded by `seconds`. */
function wrkClose(url: string, seconds: number): Promise<WrkResult> {
  return runWrk({ url, seconds, connections: CONNS, headers: ['Connection: close'] });
}

interface Target {
  port: number;
  proc: ChildProcess;
  /** tiergate's admin port: its accepted-connections counter checks that each request was a new connection. */
  admin?: number;
}

async function startTarget(name: string, key: string): Promise<Target> {
  const port = await freePort();
  const cert = join(work, `${key}.pem`);
  const keyFile = join(work, `${key}.key`);
  if (name === 'nginx') {
    const conf = join(work, `nginx-${key}.conf`);
    writeFileSync(
      conf,
      `pid ${work}/nginx.pid; error_log ${work}/nginx.err warn; daemon off; worker_processes 1;
events { worker_connections 4096; }
http { access_log off;
  server { listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert}; ssl_certificate_key ${keyFile};
    ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers ${CIPHERS}; ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_prefer_server_ciphers off; ssl_session_tickets off; ssl_session_cache off;
    location = /healthz { return 200 "ok\\n"; } } }
`,
    );
    const proc = start('nginx', ['-c', conf, '-p', work], '0');
    await waitForTls(port);
    return { port, proc };
  }
  if (name === 'node') {
    // The floor for any node:https server: the same settings, no proxy, answering every request itself.
    const script = `const { readFileSync } = require('node:fs');
require('node:https').createServer({ cert: readFileSync(${JSON.stringify(cert)}), key: readFileSync(${JSON.stringify(keyFile)}),
  ciphers: ${JSON.stringify(CIPHERS)}, ecdhCurve: 'X25519:prime256v1:secp384r1', honorCipherOrder: false,
  secureOptions: require('node:crypto').constants.SSL_OP_NO_TICKET }, (q, r) => r.end('ok\\n')).listen(${port}, '127.0.0.1');`;
    const proc = start(process.execPath, ['-e', script], '0');
    await waitForTls(port);
    return { port, proc };
  }
  const admin = await freePort();
  const cfg = join(work, `tiergate-${key}.yaml`);
  writeFileSync(
    cfg,
    `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: ${port}, tls: { cert: ${cert}, key: ${keyFile}, ssl_session_tickets: false } }]
  admin: { address: 127.0.0.1, port: ${admin} }
  workers: 1
  access_log: false
  monitor_uri: /healthz
  pools:
    app:
      servers: [{ address: "127.0.0.1:9" }]
`,
  );
  const proc = start(process.execPath, [join(root, 'packages/cli/bin/tiergate.js'), 'proxy', '-c', cfg], '0');
  await waitForTls(port);
  return { port, proc, admin };
}

async function acceptedConnections(admin: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  return [...text.matchAll(/^tiergate_proxy_client_connections_accepted_total(?:\{[^}]*\})? (\S+)$/gm)].reduce(
    (a, m) => a + Number(m[1]),
    0,
  );
}

interface Measured {
  hps: number;
  cpuUsPerHandshake: number;
  cpuShare: number;
  errors: number;
  non2xx: number;
  /** tiergate only: connections accepted per request (1.00 = a new connection each time). */
  connsPerRequest?: number;
}

async function measure(t: Target): Promise<Measured> {
  const url = `https://127.0.0.1:${t.port}/healthz`;
  await wrkClose(url, WARMUP);
  const pid = t.proc.pid as number;
  const conns0 = t.admin ? await acceptedConnections(t.admin) : 0;
  const cpu0 = treeCpuSeconds(pid);
  const t0 = performance.now();
  const r = await wrkClose(url, DURATION);
  const wall = (performance.now() - t0) / 1000;
  const cpu = treeCpuSeconds(pid) - cpu0;
  const conns = t.admin ? (await acceptedConnections(t.admin)) - conns0 : undefined;
  return {
    hps: r.rps,
    cpuUsPerHandshake: (cpu * 1e6) / r.requests,
    cpuShare: cpu / wall,
    errors: r.errors,
    non2xx: r.non2xx,
    ...(conns !== undefined && { connsPerRequest: conns / r.requests }),
  };
}

console.log(
  `TLS handshake benchmark: ${CONNS} connections, ${DURATION}s per run after ${WARMUP}s warm-up; server on core 0, wrk on core 1`,
);
// A shared machine: with more runnable processes than cores, handshakes/s measures the scheduler; CPU per handshake does not.
console.log(
  `load average before the run: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} on ${availableParallelism()} cores`,
);
console.log(
  `nginx: ${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim()}; node ${process.version} (OpenSSL ${process.versions.openssl})`,
);
const results: Record<string, Record<string, Measured>> = {};
for (const key of KEYS) {
  results[key] = {};
  for (const name of TARGETS) {
    const t = await startTarget(name, key);
    try {
      const m = await measure(t);
      (results[key] as Record<string, Measured>)[name] = m;
      const conns = m.connsPerRequest === undefined ? '' : `  conns/req ${m.connsPerRequest.toFixed(2)}`;
      console.log(
        `${key.padEnd(8)} ${name.padEnd(9)} ${m.hps.toFixed(0).padStart(6)} handshakes/s  ${m.cpuUsPerHandshake.toFixed(0).padStart(5)} µs CPU each (${(1e6 / m.cpuUsPerHandshake).toFixed(0)}/s per busy core)  server CPU ${(m.cpuShare * 100).toFixed(0)} %  errors ${m.errors} non-2xx ${m.non2xx}${conns}`,
      );
    } finally {
      await stopChild(t.proc);
    }
  }
}
if (TARGETS.includes('nginx'))
  for (const key of KEYS) {
    const base = results[key]?.nginx;
    for (const name of TARGETS.filter((n) => n !== 'nginx')) {
      const m = results[key]?.[name];
      if (!base || !m) continue;
      console.log(
        `ratio ${key} ${name}/nginx: handshakes/s ${(m.hps / base.hps).toFixed(2)}×, handshakes per busy core ${(base.cpuUsPerHandshake / m.cpuUsPerHandshake).toFixed(2)}×`,
      );
    }
  }

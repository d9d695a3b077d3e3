import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { PROXY_MALLOC_ENV, PROXY_V8_FLAGS } from '../packages/cli/src/proxy-runtime/v8-flags.ts';
import { configDir, startProxyProc, startUpstream } from './proxy-ops-helpers.ts';

// Which of Node's own modules a proxy process loads. Two matter for memory, each for the process's whole life:
// - Node's bundled undici (its fetch and WebSocket, 763 KB of source and llhttp), which an ESM import of node:http
//   pulls in by reading the module's lazy `WebSocket` getter (packages/proxy/src/node-http.ts): 2.3 MiB of heap and
//   13 MiB of RSS per process, for classes the proxy never uses;
// - Node's type stripper (amaro), loaded by a process that compiles a TypeScript module Node's compile cache does not
//   hold, as every process did at the first start of a new release: 16-18 MiB per worker
//   (packages/cli/src/proxy-runtime/compile-cache.ts warms the cache for them first).
// A real `tiergate proxy` with a cold cache (a new NODE_COMPILE_CACHE directory) serves HTTP/1.1 on both servers, h2c
// and its admin endpoint; each process writes its argv and `process.moduleLoadList` when it exits.

// With the builtins, the npm modules it loaded (registerHooks' load hook sees ESM imports and require() alike), as
// `npm <path under node_modules>`.
const HOOK = `import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
const npm = new Set();
registerHooks({ load(url, context, next) { const i = url.lastIndexOf('/node_modules/'); if (i >= 0) npm.add('npm ' + url.slice(i + 14)); return next(url, context); } });
process.on('exit', () => writeFileSync(\`\${process.env.TG_BUILTINS_DIR}/\${process.pid}.txt\`, [process.argv.slice(1).join(' '), ...process.moduleLoadList, ...npm].join('\\n')));
`;
const AMARO = 'NativeModule internal/deps/amaro/dist/index';

describe('tiergate proxy and the builtins it loads', () => {
  // `flags`: the proxy's V8 flags and malloc settings given up front (as loadtest/ does), so a `workers: 1` proxy has
  // nothing to re-execute itself for, but for the cold cache.
  it.each([
    [2, false],
    [1, false],
    [1, true],
  ])(
    "workers: %i (flags given: %s), a cold compile cache: no serving process loads Node's type stripper, its undici, undici's index, zod, yaml or commander, through HTTP/1.1 (both servers), h2c and admin requests",
    async (workers, flags) => {
      await using up = await startUpstream('u');
      using cfg = configDir(`version: 1
proxy:
  listeners:
    - { address: 127.0.0.1, port: 0 }
    - { address: 127.0.0.1, port: 0, http1_server: node }
    - { address: 127.0.0.1, port: 0, http2: true }
  admin: { address: 127.0.0.1, port: 0 }
  workers: ${workers}
  shutdown_timeout: 5s
  pools:
    app:
      servers: [{ address: "${up.address}" }]
      # An HTTP check: the health package's part of undici is loaded too.
      health_check: { type: http, path: /x, interval: 200ms }
`);
      const dir = join(cfg.file, '..');
      const hook = join(dir, 'hook.mjs');
      writeFileSync(hook, HOOK);
      const env = {
        NODE_OPTIONS: `--import=${hook}`,
        TG_BUILTINS_DIR: dir,
        NODE_COMPILE_CACHE: join(dir, 'compile-cache'),
        ...(flags ? PROXY_MALLOC_ENV : {}),
      };
      await using proxy = await startProxyProc(cfg.file, 60_000, { env, nodeArgs: flags ? PROXY_V8_FLAGS : [] });
      const [lean, node, h2c] = [...proxy.stdout().matchAll(/^listening on (\S+)$/gm)].map((m) => m[1] as string);
      // Several requests each, so both workers are likely to serve some (the kernel spreads the connections).
      for (let i = 0; i < 6; i++) {
        for (const url of [lean, node]) {
          const r = await request(`${url}/x`, { headers: { connection: 'close' } });
          expect(r.statusCode).toBe(200);
          await r.body.text();
        }
        const session = connect(h2c as string);
        const status = await new Promise<number>((resolve, reject) => {
          const s = session.request({ ':path': '/x' });
          s.on('response', (h) => resolve(Number(h[':status'])));
          s.on('error', reject);
          s.resume();
        });
        session.close();
        expect(status).toBe(200);
      }
      expect((await request(`${proxy.admin}/metrics`)).statusCode).toBe(200);
      // A reload reads the file (for `workers: 1`, in a child: proxy-runtime/single-image.ts).
      const reload = await request(`${proxy.admin}/reload`, { method: 'POST' });
      expect([reload.statusCode, await reload.body.text()]).toEqual([200, expect.stringContaining('"reloaded": true')]);
      proxy.child.kill('SIGTERM');
      expect(await proxy.exited).toBe(0);

      const processes = readdirSync(dir)
        .filter((f) => /^\d+\.txt$/.test(f))
        .map((f) => {
          const [argv = '', ...loaded] = readFileSync(join(dir, f), 'utf8').split('\n');
          return { argv, loaded };
        });
      // The serving processes: the workers (their entry file), or the one process re-executed with the proxy's flags
      // (same PID: the image before the execve never exits). The warm-cache run is one more process.
      const serving = processes.filter((p) => (workers > 1 ? p.argv.includes('worker-entry.js') : / proxy -c /.test(p.argv)));
      expect(serving.length, JSON.stringify(processes.map((p) => p.argv))).toBe(workers);
      const warm = processes.filter((p) => p.argv.endsWith(' warm-cache'));
      expect(warm.length).toBe(1);
      // The cache was cold: the warm-up run stripped the types (else this test would prove nothing).
      expect(warm[0]?.loaded).toContain(AMARO);
      // What they served with was loaded (the list is real): node:http2 and node:http.
      for (const p of serving) expect(p.loaded).toEqual(expect.arrayContaining(['NativeModule http2', 'NativeModule http']));
      expect(serving.flatMap((p) => p.loaded.filter((m) => m === AMARO || m.includes('deps/undici')))).toEqual([]);
      // undici's own modules, not its index (fetch, WebSocket, cache, mocks: packages/proxy/src/undici-parts.ts). The
      // list is real: the upstream pool's and the health check's modules are there.
      for (const p of serving) {
        const undici = p.loaded.filter((m) => m.startsWith('npm undici/'));
        expect(undici).toEqual(expect.arrayContaining(['npm undici/lib/dispatcher/pool.js', 'npm undici/lib/api/api-request.js']));
        expect(undici.filter((m) => /^npm undici\/(index\.js|lib\/(web|mock|cache|interceptor)\/)/.test(m))).toEqual([]);
      }
      // A serving process gets its config checked: a worker from the primary, a `workers: 1` proxy's serving image from
      // the image before its execve, and at a reload from the primary or a child (`proxy reload-read`). It reads no
      // file, so it loads neither the schema's zod nor yaml (nor the CLI's commander); packages/config/src/runtime.ts.
      for (const p of serving) expect(p.loaded.filter((m) => /^npm (zod|yaml|commander)\//.test(m))).toEqual([]);
      // The list is real: the process that read the file for the reload loaded them.
      const reader = processes.filter((p) => /tiergate\.js proxy (reload-read )?-c /.test(p.argv) && !serving.includes(p));
      expect(reader.length, JSON.stringify(processes.map((p) => p.argv))).toBe(1);
      expect(reader[0]?.loaded).toEqual(expect.arrayContaining(['npm zod/index.js', 'npm yaml/dist/index.js']));
      // Nor does the primary (the warm-up run loads every command's modules: the director's and app's node:http too).
      expect(processes.filter((p) => !warm.includes(p)).flatMap((p) => p.loaded.filter((m) => m.includes('deps/undici')))).toEqual([]);
    },
  );
});

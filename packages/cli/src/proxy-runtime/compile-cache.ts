import { spawnSync } from 'node:child_process';
import { flushCompileCache, getCompileCacheDir } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';

const LAUNCHER = fileURLToPath(new URL('../../bin/tiergate.js', import.meta.url));

/**
 * Whether this process stripped TypeScript itself: a module missed Node's compile cache, so Node loaded its type
 * stripper (amaro: its source and its WebAssembly memory, 16-18 MiB of RSS that stay for the process's life).
 */
function strippedTypes(): boolean {
  // process.moduleLoadList (Node's own modules loaded, in order) is old but undocumented, so not in @types/node: if
  // Node renames it or amaro, this says false and nothing is warmed, and test/proxy-builtins.test.ts fails.
  const loaded = (process as { moduleLoadList?: readonly string[] }).moduleLoadList ?? [];
  return loaded.includes('NativeModule internal/deps/amaro/dist/index');
}

/**
 * Before the processes that serve start (the workers, or this process re-executed with the proxy's V8 flags): when
 * this one found Node's compile cache cold, as every first start of a new release does (the cache is keyed by the
 * files' paths and contents, and by the V8 flags), runs `tiergate warm-cache` once with the serving processes' flags,
 * so that each of them finds every module compiled and never loads the type stripper. Without it each worker of a
 * fresh release carried amaro for its whole life (measured: 112-115 MiB idle RSS against 96 MiB; the primary 137
 * against 108). Nothing happens when the cache is disabled or was warm. Returns the cache's directory, for the
 * serving processes' NODE_COMPILE_CACHE (cluster workers do not run the launcher that enables it), and whether it
 * was cold here (warm-cache ran).
 */
export function warmCompileCache(
  execArgv: readonly string[],
  log: Pick<Logger, 'info' | 'warn'>,
): { dir: string; warmed: boolean } | undefined {
  const dir = getCompileCacheDir();
  if (dir === undefined) return undefined;
  // getCompileCacheDir() is the subdirectory of this process's Node version and flags; the serving processes',
  // under the same base, differ in the flags.
  const base = dirname(dir);
  if (!strippedTypes()) return { dir: base, warmed: false };
  flushCompileCache(); // this process's own modules, for its next start
  const started = Date.now();
  const r = spawnSync(process.execPath, [...execArgv, LAUNCHER, 'warm-cache'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    env: { ...process.env, NODE_COMPILE_CACHE: base },
    timeout: 120_000,
  });
  if (r.status === 0)
    log.info({ ms: Date.now() - started, dir: r.stdout.trim().replace(/^compile cache warmed: /, '') }, 'compile cache warmed');
  else log.warn({ status: r.status, signal: r.signal, stderr: r.stderr?.slice(-500), error: r.error?.message }, 'compile cache not warmed');
  return { dir: base, warmed: true };
}

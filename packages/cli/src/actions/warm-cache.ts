import { flushCompileCache, getCompileCacheDir } from 'node:module';

/**
 * What the commands import when they run: their actions/ modules (and with them every package they load statically),
 * and what `demo-app` imports once its telemetry started. Importing one runs only its top-level declarations: none of
 * them starts anything. Not here: what loads only with a setting or on first use (the OpenTelemetry SDK when tracing
 * is on, undici on a director's first HTTP health check, koffi with the first netlink socket). The proxy's cluster
 * workers start from proxy-runtime/worker-entry.js and a `workers: 1` proxy's serving image from single-entry.js, plain
 * JavaScript, which need no entry here.
 */
const ENTRIES: readonly (() => Promise<unknown>)[] = [
  () => import('./validate.ts'),
  () => import('./director.ts'),
  () => import('./director-wait.ts'),
  () => import('./realserver.ts'),
  () => import('./proxy.ts'),
  () => import('./proxy-reload-read.ts'),
  () => import('../proxy-runtime/worker.ts'),
  () => import('../proxy-runtime/single-image.ts'),
  () => import('./demo-app.ts'),
  () => import('../local-stack/run-local-stack.ts'),
  () => import('@tiergate/demo-app'),
  () => import('@tiergate/session'),
];

/** `tiergate warm-cache` (commands/warm-cache.ts). */
export async function warmCacheCommand(): Promise<void> {
  const dir = getCompileCacheDir();
  if (dir === undefined) {
    // NODE_DISABLE_COMPILE_CACHE, or a cache directory Node could not use: nothing would be kept.
    process.stdout.write('compile cache disabled: nothing to warm\n');
    return;
  }
  // Every command's definition (what help loads), then what each runs.
  await (await import('../program.ts')).buildProgram();
  for (const load of ENTRIES) await load();
  flushCompileCache();
  process.stdout.write(`compile cache warmed: ${dir}\n`);
}

import type { Command } from 'commander';

/**
 * `tiergate warm-cache`: help no longer loads what a command runs (program.ts), so something has to load it all to
 * fill Node's compile cache ahead of time: the real-kernel tests run it on the host before copying the cache into
 * their QEMU guest, and a deployment can run it with the NODE_COMPILE_CACHE its services use.
 */
export function registerWarmCache(program: Command): void {
  program
    .command('warm-cache')
    .description("load every command's modules once, then exit: fills Node's compile cache (NODE_COMPILE_CACHE) for the next commands")
    .action(async () => (await import('../actions/warm-cache.ts')).warmCacheCommand());
}

/**
 * What a proxy process needs set before it starts (docs/operations.md, "Memory"): V8 flags and glibc
 * malloc settings, all read once, at startup. The operator's own value of any of them wins.
 */

/**
 * V8 flags a proxy process needs:
 * - `--max-semi-space-size=4`: under load V8 grows the young generation to 32 MiB semi-spaces, and from then
 *   on each scavenge promotes most requests in flight (10–17 MB a time, 20–55 ms pauses): p99 went from ~5 ms
 *   to 35–45 ms and RSS past 300 MiB (loadtest/proxy-bench.ts). Capped at 4 MiB, scavenges stay ~1 ms and
 *   promote little.
 * - `--initial-old-space-size=40`: the old generation's first limit. Left to V8, the first real mark-compact
 *   of a loaded proxy comes from the memory reducer's 100 s watchdog, after ~0.45 MiB/s of promotion (mostly
 *   undici's per-client queue arrays) took the old generation from ~22 to 55–75 MiB: soak peaks of
 *   165–190 MiB. With 40 MiB the first mark-compact comes at ~35 MiB, seconds into load, and V8 sizes the
 *   limits after it from real allocation and GC speeds. It must sit well above what starting the proxy
 *   allocates (~25 MiB): 32 was too close, a mark-compact while starting sometimes came first, and a limit
 *   V8 derives then, with no speeds measured yet, is 4× what survived. V8 also keeps later limits at or
 *   above it. A starting point, not a cap.
 * - `--heap-growing-percent=100`: after each mark-compact V8 sets the old generation's next limit to what
 *   survived times a factor it derives from GC and mutator speeds, up to 4× on a machine with this much memory;
 *   a proxy's GC is fast, so it got 4×: ~28 MiB live, next mark-compact at ~113 MiB. HTTP/2 promotes ~2.3 KB
 *   per request (node:http2's per-stream objects in flight at a scavenge) against HTTP/1.1's ~0.75, so it
 *   reached that limit within seconds: peak RSS 215–274 MiB (loadtest/tls-bench.ts). A factor of 2 keeps the
 *   limit at 37–64 MiB: 171–190 MiB, a mark-compact every few seconds, no CPU per request measurably added;
 *   lower factors (1.5, 1.25) saved 10–20 MiB more for 4–8× as many mark-compacts and more CPU at 64 KiB.
 *   HTTP/1.1 gets the same bound on its slower climb (the soak peaks above). (Measured with node:http2's
 *   compatibility API; serving streams through its core API, http2-stream.ts, cut the promotion to ~1.5 KB per
 *   request, and peak RSS did not measurably move: 142–189 MiB.)
 * - `--no-allocation-site-pretenuring`: V8 allocates the objects of an allocation site straight in the old
 *   generation once it has seen most of them survive a scavenge. Some site of node:http2's per-stream work gets
 *   that verdict in a proxy process (it did not in a bare node:http2 server until undici's error classes were
 *   loaded), and the stream's objects allocated old then hold the young ones they point to through every
 *   scavenge until a mark-compact: h2 promoted 735–942 bytes per request against 188–312 with the flag, and a
 *   whole HTTPS/1.1 + h2 run 391–413 against 109–122. Interleaved rounds (loadtest/README.md, "What h2 leaves to
 *   the old generation"): CPU per request −7 % (HTTPS/1.1) to −27 % (h2 100 B), h2 p99 10.8 → 8.0 ms at 100 B
 *   and 31.8 → 16.7 ms at 64 KiB, peak RSS 5–15 MiB lower; a proxy's objects live for one request, so nothing
 *   gains from being allocated old.
 * - `--memory-saver-mode`: the old generation's pages that a mark-compact empties go to a pool that V8 keeps,
 *   committed and resident, until a memory-reducing mark-compact, and under load none comes (V8 reduces memory
 *   only on memory pressure or in the memory reducer, which waits for a quiet mutator). The pool is what the
 *   old generation reached before its last mark-compact less what survived: 66–70 pages of 256 KiB (~17 MiB)
 *   through a whole h2 64 KiB run (`--trace-gc-nvp`, pool_local_chunks), the largest single share of that case's
 *   peak RSS, 151–161 MiB. In memory saver mode every mark-compact reduces memory, and the pool is emptied each
 *   time: 129–139 MiB (loadtest/README.md, "V8's page pool"). The cost: those mark-compacts compact more and come
 *   a little more often (h2 64 KiB: 13–18 ms pauses every 0.9–1.6 s against 8–13 ms every 1.3–1.4 s), and p99 is
 *   higher when a short run catches one; CPU per request the same at 100 B, at 64 KiB up to 10–17 % more
 *   (plain HTTP/1.1). docs/operations.md, "Memory", says how to turn it off.
 * - `--min-semi-space-size=4`: memory saver mode also keeps the young generation at its first size, 1 MiB
 *   semi-spaces: 2.5× the promotion and the CPU and p99 costs measured for `--max-semi-space-size=1`
 *   (loadtest/README.md). Starting at the cap keeps the 4 MiB the first flag chose.
 */
export const PROXY_V8_FLAGS: readonly string[] = [
  '--max-semi-space-size=4',
  '--initial-old-space-size=40',
  '--heap-growing-percent=100',
  '--no-allocation-site-pretenuring',
  '--memory-saver-mode',
  '--min-semi-space-size=4',
];

/** A proxy process's execArgv: `execArgv`, plus the PROXY_V8_FLAGS the operator did not set (execArgv or NODE_OPTIONS). */
export function proxyExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)];
  // `--no-x` and `--x` are one setting: the operator's either way wins.
  const flagName = (f: string): string =>
    f
      .split('=')[0]!
      .replaceAll('_', '-')
      .replace(/^--no-/, '--');
  const missing = PROXY_V8_FLAGS.filter((f) => !given.some((g) => flagName(g) === flagName(f)));
  return [...execArgv, ...missing];
}

/**
 * glibc malloc settings a proxy process needs, as environment variables.
 * - `MALLOC_ARENA_MAX=2`: glibc gives a thread that mallocs while another holds an arena's lock an arena of its
 *   own, up to 8 per core, and each arena keeps its free memory; V8's GC and compiler threads filled 6 arenas
 *   with ~20 MiB. With two (the main thread's and one the helper threads share) the soak's RSS was 15–20 MiB
 *   lower at the same req/s and p99 (loadtest/README.md).
 * - `MALLOC_TRIM_THRESHOLD_=131072` (glibc's own starting value, made fixed): left alone, glibc raises its mmap
 *   and trim thresholds each time a large mapped block is freed (up to 32 and 64 MiB), and from then on keeps
 *   that much free memory at the top of the heap and serves large blocks from the heap too. Over TLS, where
 *   OpenSSL's and the sockets' buffers come and go, that kept 6–15 MiB more RSS (loadtest/tls-bench.ts,
 *   interleaved rounds with and without; HTTPS/1.1 100 B 133–139 against 148–151 MiB) at the same CPU per
 *   request. Setting any threshold turns the raising off; the mmap threshold stays 128 KiB, so a 64 KiB read
 *   buffer still comes from the heap (a 64 KiB threshold cost a third of the 64 KiB throughput).
 */
export const PROXY_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', MALLOC_TRIM_THRESHOLD_: '131072' };

/** The GLIBC_TUNABLES name of each PROXY_MALLOC_ENV variable: either way of setting it is the operator's. */
const TUNABLE: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: 'glibc.malloc.arena_max',
  MALLOC_TRIM_THRESHOLD_: 'glibc.malloc.trim_threshold',
};

/** The PROXY_MALLOC_ENV variables `env` leaves unset (neither by name nor in GLIBC_TUNABLES). */
export function proxyMallocEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const tunables = (env.GLIBC_TUNABLES ?? '').split(':').map((t) => t.split('=')[0]);
  const missing: Record<string, string> = {};
  for (const [name, value] of Object.entries(PROXY_MALLOC_ENV))
    if (env[name] === undefined && !tunables.includes(TUNABLE[name])) missing[name] = value;
  return missing;
}

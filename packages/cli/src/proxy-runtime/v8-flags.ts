/**
 * V8 flags a proxy process needs and V8 reads only at startup (docs/operations.md, "Memory"): under load V8
 * grows the young generation to 32 MiB semi-spaces, and from then on each scavenge promotes most requests
 * in flight (10–17 MB a time, 20–55 ms pauses): p99 went from ~5 ms to 35–45 ms and RSS past 300 MiB
 * (loadtest/proxy-bench.ts). Capped at 4 MiB, scavenges stay ~1 ms and promote little.
 */
export const PROXY_V8_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/** A proxy process's execArgv: `execArgv`, plus the PROXY_V8_FLAGS the operator did not set (execArgv or NODE_OPTIONS). */
export function proxyExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)];
  const flagName = (f: string): string => f.split('=')[0]!.replaceAll('_', '-');
  const missing = PROXY_V8_FLAGS.filter((f) => !given.some((g) => flagName(g) === flagName(f)));
  return [...execArgv, ...missing];
}

/**
 * `workers: 1` serves in this process, which started without PROXY_V8_FLAGS (the `tiergate` launcher takes
 * none): re-executes it in place with the flags it lacks. process.execve keeps the PID, stdio, environment
 * and signal targets, so supervisors and scripts see one process, as before; the config is simply read
 * again by the new image. Returns only when nothing is missing or the platform has no process.execve.
 */
export function reexecWithProxyFlags(): void {
  const execArgv = proxyExecArgv(process.execArgv, process.env.NODE_OPTIONS);
  if (execArgv.length === process.execArgv.length || typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, ...execArgv, ...process.argv.slice(1)], process.env);
}

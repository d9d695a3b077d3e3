// Test-only fault injection, loaded with NODE_OPTIONS=--import into a `tiergate proxy` process (and its
// workers): SIGUSR2 makes the process throw outside any handler (TG_FAULT=throw, the default) or reject a
// promise nobody awaits (TG_FAULT=reject), the two errors node ends a process for by default.
process.on('SIGUSR2', () => {
  const err = Object.assign(new Error('injected fault'), { code: 'E_INJECTED' });
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: test/ runs under plain vitest, not turbo (no task cache to invalidate).
  if (process.env.TG_FAULT === 'reject') void Promise.reject(err);
  else
    setImmediate(() => {
      throw err;
    });
});

// Preloaded with `node --import` into a process under test: records every module URL the process
// resolves (ESM and require alike, through an in-thread resolve hook installed before anything else
// loads) and writes them as a JSON array to $TG_MODULE_PROBE_OUT when the process exits.
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

// biome-ignore lint/suspicious/noUndeclaredEnvVars: test/ runs under plain vitest, not turbo (no task cache to invalidate).
const out = process.env.TG_MODULE_PROBE_OUT;
if (!out) throw new Error('tracing-module-probe: set TG_MODULE_PROBE_OUT');
const resolved = new Set<string>();
registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context);
    resolved.add(result.url);
    return result;
  },
});
process.once('exit', () => writeFileSync(out, JSON.stringify([...resolved])));

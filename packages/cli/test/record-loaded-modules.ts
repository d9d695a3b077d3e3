/**
 * Loaded with `node --import` by test/startup-imports.test.ts: records the URL of every module the process loads
 * (ESM import and CommonJS require alike: registerHooks' hooks run in this thread for both) and writes them, one a
 * line, to $TIERGATE_LOADED_MODULES when the process exits.
 */
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.TIERGATE_LOADED_MODULES;
if (out) {
  const loaded = new Set<string>();
  registerHooks({
    load(url, context, nextLoad) {
      loaded.add(url);
      return nextLoad(url, context);
    },
  });
  process.on('exit', () => writeFileSync(out, [...loaded].map((url) => `${url}\n`).join('')));
}

/**
 * One virtual user: a worker thread that loads the k6 script through Node's ESM loader, with a resolve hook
 * that maps `k6`, `k6/http`, `k6/ws` to the runner's modules and refuses every other `k6/*` module and remote
 * import; then runs one iteration per `iterate` message from the main thread.
 */
import { registerHooks } from 'node:module';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { CookieJar } from './cookie-jar.ts';
import { isRefusal, K6Unsupported } from './refusal.ts';
import { Bridge, vu } from './vu-context.ts';

export interface VuWorkerData {
  script: string;
  vuId: number;
  env: Record<string, string>;
  signal: SharedArrayBuffer;
  requests: MessagePort;
  events: MessagePort;
  maxRedirects: number;
  noCookiesReset: boolean;
}

export interface IterateMessage {
  type: 'iterate';
  exec: string;
  scenario: string;
  iter: number;
  env: Record<string, string>;
  tags: Record<string, string>;
}

/** The k6 modules this runner implements; any other `k6/...` import is refused by name. */
export const MODULES: Record<string, string> = {
  k6: './modules/k6.ts',
  'k6/http': './modules/http.ts',
  'k6/ws': './modules/ws.ts',
};

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === 'k6' || specifier.startsWith('k6/')) {
      const file = MODULES[specifier];
      if (!file) throw new K6Unsupported(`import of module '${specifier}'`, `implemented: ${Object.keys(MODULES).join(', ')}`);
      return { url: new URL(file, import.meta.url).href, shortCircuit: true };
    }
    if (/^https?:/.test(specifier)) throw new K6Unsupported(`import of remote module '${specifier}'`);
    return nextResolve(specifier, context);
  },
});

const data = workerData as VuWorkerData;
const g = globalThis as Record<string, unknown>;
g.__ENV = { ...data.env };
g.__VU = data.vuId;
g.__ITER = 0;
g.open = () => {
  throw new K6Unsupported('open()');
};
Object.assign(vu, {
  id: data.vuId,
  iter: 0,
  env: data.env,
  scenario: '',
  tags: {},
  groupPath: '',
  jar: new CookieJar(),
  maxRedirects: data.maxRedirects,
  bridge: new Bridge(new Int32Array(data.signal), data.requests, data.events),
});

function report(err: unknown): { type: 'refused' | 'error'; message: string } {
  if (isRefusal(err)) return { type: 'refused', message: (err as Error).message };
  return { type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) };
}

let script: Record<string, unknown>;
try {
  script = await import(data.script);
} catch (err) {
  parentPort!.postMessage({ ...report(err), phase: 'init' });
  process.exit(0);
}

let options: unknown;
try {
  options = structuredClone(script.options);
} catch {
  options = { __invalid: 'options must be plain data (no functions)' };
}
parentPort!.postMessage({ type: 'ready', exports: Object.keys(script), options });

parentPort!.on('message', (m: IterateMessage) => {
  const fn = script[m.exec];
  g.__ENV = { ...data.env, ...m.env };
  g.__ITER = m.iter;
  vu.iter = m.iter;
  vu.scenario = m.scenario;
  vu.tags = m.tags;
  vu.groupPath = '';
  if (!data.noCookiesReset) vu.jar.reset();
  const start = performance.now();
  try {
    if (typeof fn !== 'function') throw new Error(`the script exports no function '${m.exec}'`);
    const result = fn();
    if (result instanceof Promise) throw new K6Unsupported(`an async VU function ('${m.exec}')`);
    parentPort!.postMessage({ type: 'done', ms: performance.now() - start, tags: m.tags });
  } catch (err) {
    const r = report(err);
    parentPort!.postMessage(r.type === 'refused' ? r : { type: 'done', ms: performance.now() - start, error: r.message, tags: m.tags });
  }
});

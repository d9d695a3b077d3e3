import { createRequire } from 'node:module';
import type * as Undici from 'undici';

type Agent = Undici.Agent;
/** undici's `Dispatcher#request`, as its api module has it: called on a dispatcher with an origin and a path. */
type RequestApi = (this: Agent, opts: Undici.Dispatcher.RequestOptions) => Promise<Undici.Dispatcher.ResponseData>;

/**
 * The two parts of undici a check uses, loaded on the first HTTP check and not with this package: the director's
 * `apply` and `realserver` commands load @tiergate/health but never run an HTTP check, and under QEMU's software CPU
 * (the real-IPVS tests) undici's modules cost seconds per command. From their own modules, not undici's index, which
 * loads all of undici (fetch, WebSocket, its cache and mocks: 110 modules) into every proxy and director that checks
 * over HTTP, for its whole life (packages/proxy/src/undici-parts.ts has the figures).
 */
let undici: { Agent: typeof Undici.Agent; request: RequestApi } | undefined;
function loadUndici(): { Agent: typeof Undici.Agent; request: RequestApi } {
  if (!undici) {
    const require = createRequire(import.meta.url);
    undici = { Agent: require('undici/lib/dispatcher/agent.js'), request: require('undici/lib/api/api-request.js') };
  }
  return undici;
}

import { deadline, deadlineDetail, errorDetail } from './deadline.ts';
import { type HttpCheckSpec, invalid, type StatusRange } from './spec.ts';
import type { Checker, CheckResult, CheckTarget } from './types.ts';

/** Healthy statuses when the spec names none: any 2xx or 3xx, as keepalived and HAProxy's `httpchk`. */
export const DEFAULT_EXPECT_STATUS: readonly StatusRange[] = Object.freeze([[200, 399] as const]);
/** How much body a body match reads at most when the spec does not say. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

type Verdict = { readonly ok: boolean; readonly detail: string };

/**
 * keepalived HTTP_GET / SSL_GET: GET `path` from the target and judge the status against `expectStatus`
 * and, when `bodyMatch` is set, the first `maxBodyBytes` of the body. The whole exchange (connect, headers,
 * body) is bounded by the check's timeout. Each request closes its connection (`reset`), so every check
 * proves that a new connection can be made, like the checkers it models; the checker's own Agent keeps
 * these requests out of the proxy's pools.
 */
export class HttpChecker implements Checker {
  readonly kind: 'http' | 'https';
  readonly #spec: HttpCheckSpec;
  readonly #expect: readonly StatusRange[];
  readonly #match: ((body: string) => boolean) | null;
  readonly #maxBodyBytes: number;
  #agent: Agent | undefined;

  constructor(spec: HttpCheckSpec) {
    validateHttpSpec(spec);
    this.kind = spec.kind;
    this.#spec = spec;
    this.#expect = spec.expectStatus ?? DEFAULT_EXPECT_STATUS;
    this.#match = compileMatch(spec.bodyMatch);
    this.#maxBodyBytes = spec.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  async check(target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    using d = deadline(timeoutMs, signal);
    let verdict: Verdict;
    try {
      verdict = await this.#exchange(target, d.signal);
    } catch (err) {
      verdict = { ok: false, detail: d.reason ? deadlineDetail(d, timeoutMs) : errorDetail(err) };
    }
    return { ...verdict, durationMs: d.elapsedMs() };
  }

  close(): Promise<void> {
    return this.#agent?.close() ?? Promise.resolve();
  }

  async #exchange(target: CheckTarget, signal: AbortSignal): Promise<Verdict> {
    const headers: Record<string, string> = { 'user-agent': 'tiergate-health', ...this.#spec.headers };
    if (this.#spec.host) headers.host = this.#spec.host;
    const { Agent, request } = loadUndici();
    this.#agent ??= new Agent({ connect: { rejectUnauthorized: this.#spec.rejectUnauthorized ?? true, ...this.#spec.tlsFiles } });
    // Parsed as a URL, as undici's top-level request() does: a path with a space or non-ASCII is sent
    // percent-encoded (undici's dispatcher refuses it as it is).
    const url = new URL(`${this.kind}://${authority(target)}${this.#spec.path}`);
    const res = await request.call(this.#agent, {
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers,
      signal,
      reset: true,
    });
    const status = res.statusCode;
    if (!this.#expect.some(([lo, hi]) => status >= lo && status <= hi)) {
      discard(res.body);
      return { ok: false, detail: `HTTP ${status} not in ${this.#expect.map(([lo, hi]) => `${lo}-${hi}`).join(',')}` };
    }
    if (!this.#match) {
      discard(res.body);
      return { ok: true, detail: `HTTP ${status}` };
    }
    const body = await readAtMost(res.body, this.#maxBodyBytes);
    return this.#match(body)
      ? { ok: true, detail: `HTTP ${status}, body matches` }
      : { ok: false, detail: `HTTP ${status}, body does not match ${String(this.#spec.bodyMatch)}` };
  }
}

/**
 * Drops a body we will not read. With `reset` the connection closes anyway, so destroying beats draining;
 * undici's body emits an AbortError when destroyed, which needs a listener or it would crash the process.
 */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on('error', () => {});
  body.destroy();
}

/** Reads up to `max` bytes, then stops (leaving the iterator destroys the stream and, with `reset`, the connection). */
async function readAtMost(body: AsyncIterable<Buffer>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= max) break;
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

function compileMatch(match: string | RegExp | undefined): ((body: string) => boolean) | null {
  if (match === undefined) return null;
  if (typeof match === 'string') return (body) => body.includes(match);
  // A /g or /y regex keeps lastIndex between test() calls, so checks would alternate; strip those flags.
  const re = new RegExp(match.source, match.flags.replace(/[gy]/g, ''));
  return (body) => re.test(body);
}

function authority(t: CheckTarget): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

function validateHttpSpec(spec: HttpCheckSpec): void {
  const problems: string[] = [];
  if (spec.kind !== 'http' && spec.kind !== 'https') problems.push(`kind must be http or https, got ${String(spec.kind)}`);
  if (typeof spec.path !== 'string' || !spec.path.startsWith('/')) problems.push("path must start with '/'");
  for (const range of spec.expectStatus ?? []) {
    const [lo, hi] = range;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 100 || hi > 599 || lo > hi)
      problems.push(`expectStatus range [${range.join(', ')}] must be integers within 100..599, low <= high`);
  }
  if (spec.expectStatus?.length === 0) problems.push('expectStatus must name at least one range');
  if (spec.maxBodyBytes !== undefined && !(Number.isInteger(spec.maxBodyBytes) && spec.maxBodyBytes > 0))
    problems.push('maxBodyBytes must be a positive integer');
  if (problems.length > 0) invalid(`http health check: ${problems.join('; ')}`, problems);
}

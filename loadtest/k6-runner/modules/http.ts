/**
 * `k6/http`: get/post/put/patch/del/head/options/request with params headers, jar, tags, timeout, redirects,
 * responseType text|none, cookies; k6's cookie jars; redirects followed as k6 does (each hop is a request in
 * the metrics). The I/O runs on the main thread (undici) while this VU blocks.
 */
import { CookieJar as Jar } from '../cookie-jar.ts';
import { parseDuration } from '../options.ts';
import { K6Unsupported, refused } from '../refusal.ts';
import { currentTags, vu } from '../vu-context.ts';

/** What the main thread answers for one HTTP exchange. */
export interface WireResponse {
  status: number;
  /** Lower-case header name → values. */
  headers: Record<string, string[]>;
  body: string;
  error: string;
  errorCode: number;
  timings: { duration: number; waiting: number; receiving: number };
}

const PARAMS = new Set(['headers', 'jar', 'tags', 'timeout', 'redirects', 'responseType', 'cookies']);

/** Go's canonical header key, as k6 exposes response headers: `x-instance-id` → `X-Instance-Id`. */
function canonical(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, ch: string) => dash + ch.toUpperCase());
}

export class CookieJar extends Jar {}

export class Response {
  readonly status: number;
  readonly body: string | null;
  readonly headers: Record<string, string>;
  readonly url: string;
  readonly error: string;
  readonly error_code: number;
  readonly timings: WireResponse['timings'];
  readonly request: { method: string; url: string; body: string; headers: Record<string, string> };
  readonly cookies: Record<string, { name: string; value: string }[]>;

  constructor(wire: WireResponse, url: string, request: Response['request'], keepBody: boolean) {
    this.status = wire.status;
    this.body = keepBody ? wire.body : null;
    this.headers = {};
    for (const [name, values] of Object.entries(wire.headers)) this.headers[canonical(name)] = values.join(', ');
    this.url = url;
    this.error = wire.error;
    this.error_code = wire.errorCode;
    this.timings = wire.timings;
    this.request = request;
    this.cookies = {};
    for (const line of wire.headers['set-cookie'] ?? []) {
      const pair = line.split(';')[0] ?? '';
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      this.cookies[name] = [...(this.cookies[name] ?? []), { name, value: pair.slice(eq + 1).trim() }];
    }
  }

  json(selector?: string): unknown {
    if (selector !== undefined) throw new K6Unsupported('Response.json(selector)');
    if (this.body === null) throw new Error('Response.json(): the body was not kept (responseType none)');
    return JSON.parse(this.body);
  }

  html(): never {
    throw new K6Unsupported('Response.html()');
  }

  clickLink(): never {
    throw new K6Unsupported('Response.clickLink()');
  }

  submitForm(): never {
    throw new K6Unsupported('Response.submitForm()');
  }
}

type Body = string | Record<string, string> | ArrayBuffer | null | undefined;

function encodeBody(body: Body, headers: Record<string, string>): string | Uint8Array | undefined {
  if (body === null || body === undefined) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (Object.values(body).some((v) => typeof v !== 'string'))
    throw new K6Unsupported('a request body object with non-string values (http.file, nested objects)');
  // k6 sends a plain object as a form, with this content type unless the script set one.
  if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/x-www-form-urlencoded';
  return new URLSearchParams(body).toString();
}

export function request(method: string, url: string | { url: string }, body?: Body, params: Record<string, unknown> = {}): Response {
  if (typeof url !== 'string') throw new K6Unsupported('http.url`` tagged URLs');
  for (const key of Object.keys(params ?? {})) if (!PARAMS.has(key)) throw new K6Unsupported(`http params.${key}`);
  const p = params ?? {};
  if (p.responseType !== undefined && p.responseType !== 'text' && p.responseType !== 'none') {
    throw new K6Unsupported(`http params.responseType '${String(p.responseType)}'`);
  }
  const jar = (p.jar as Jar | undefined) ?? vu.jar;
  const timeoutMs =
    p.timeout === undefined ? 60_000 : typeof p.timeout === 'number' ? p.timeout : parseDuration(p.timeout, 'params.timeout');
  const maxRedirects = p.redirects === undefined ? vu.maxRedirects : Number(p.redirects);
  const userTags = (p.tags ?? {}) as Record<string, string>;
  const userHeaders = { ...((p.headers ?? {}) as Record<string, string>) };
  let encoded = encodeBody(body, userHeaders);
  const requestBody = typeof encoded === 'string' ? encoded : '';
  let current = url;
  let verb = method.toUpperCase();
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'User-Agent': 'k6-runner (tiergate; +loadtest/k6-runner)', ...userHeaders };
    const fromJar = jar.headerFor(current);
    const extra = Object.entries((p.cookies ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`);
    const cookie = [fromJar, ...extra].filter(Boolean).join('; ');
    if (cookie) headers.Cookie = cookie;
    // k6 tags a request with its URL as `name` unless the script names it.
    const tags = currentTags({ method: verb, url: current, name: current, ...userTags });
    const wire = vu.bridge.call<WireResponse>({ type: 'http', method: verb, url: current, headers, body: encoded, timeoutMs, tags });
    jar.storeFromResponse(current, wire.headers['set-cookie'] ?? []);
    const location = wire.headers.location?.[0];
    if (wire.status >= 301 && wire.status <= 308 && wire.status !== 304 && location && hop < maxRedirects) {
      current = new URL(location, current).toString();
      // As Go's client (k6): 301/302/303 turn a non-GET/HEAD into a GET without body; 307/308 repeat the request.
      if (wire.status <= 303 && verb !== 'GET' && verb !== 'HEAD') {
        verb = 'GET';
        encoded = undefined;
      }
      continue;
    }
    return new Response(wire, current, { method: verb, url: current, body: requestBody, headers }, p.responseType !== 'none');
  }
}

export const get = (url: string, params?: Record<string, unknown>) => request('GET', url, null, params);
export const head = (url: string, params?: Record<string, unknown>) => request('HEAD', url, null, params);
export const post = (url: string, body?: Body, params?: Record<string, unknown>) => request('POST', url, body, params);
export const put = (url: string, body?: Body, params?: Record<string, unknown>) => request('PUT', url, body, params);
export const patch = (url: string, body?: Body, params?: Record<string, unknown>) => request('PATCH', url, body, params);
export const del = (url: string, body?: Body, params?: Record<string, unknown>) => request('DELETE', url, body, params);
export const options = (url: string, body?: Body, params?: Record<string, unknown>) => request('OPTIONS', url, body, params);
/** The VU's own jar (k6: one per VU, emptied at each iteration start unless options.noCookiesReset). */
export const cookieJar = (): Jar => vu.jar;

export const asyncRequest = refused('http.asyncRequest()');
export const batch = refused('http.batch()');
export const file = refused('http.file()');
export const url = refused('http.url``');
export const expectedStatuses = refused('http.expectedStatuses()');
export const setResponseCallback = refused('http.setResponseCallback()');

export default {
  request,
  get,
  head,
  post,
  put,
  patch,
  del,
  options,
  cookieJar,
  CookieJar,
  asyncRequest,
  batch,
  file,
  url,
  expectedStatuses,
  setResponseCallback,
};

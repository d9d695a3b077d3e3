/**
 * The OTLP/HTTP transport of the protobuf pipeline, on undici, with the OTLP exporter's own retry policy.
 *
 * Why not the exporter's node:http transport: it sends through `http.request` and a Readable piped into it.
 * Those share node's OutgoingMessage and stream code with the proxy's own responses, and every export fed that
 * hot code objects of other shapes: V8 deoptimized it (~3× more deopts per run, in `write_`, `_send`, `end`,
 * `Readable.push`…) and reoptimized it for both, slower for every request. At 1 % sampling that, not the spans,
 * was most of what tracing cost the proxy (loadtest/tracing-bench.ts). undici is the proxy's upstream client
 * already, and its dispatch API needs no stream objects.
 *
 * Outcomes follow @opentelemetry/otlp-exporter-base's http transport: 2xx success (with the response body),
 * 429/502/503/504 and network errors retryable (Retry-After honoured), other statuses failure. Retries: up to
 * 5 more attempts, backoff 1 s × 1.5 per attempt, capped at 5 s, ±20 % jitter, all within the export timeout.
 * With `compression: gzip` the body is compressed once per export (on libuv's thread pool, not the calling thread)
 * and sent with `content-encoding: gzip`, as the OTLP/HTTP spec allows; `tls` goes to the connections' TLS options.
 */

import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { ExportResponse, IExporterTransport } from '@opentelemetry/otlp-exporter-base';
import { OTLPExporterError } from '@opentelemetry/otlp-exporter-base';
import type * as Undici from 'undici';
import type { Dispatcher } from 'undici';

/** undici's Agent from its own module: undici's index would load all of undici (packages/proxy/src/undici-parts.ts). */
const Agent: typeof Undici.Agent = createRequire(import.meta.url)('undici/lib/dispatcher/agent.js');

const gzipAsync = promisify(gzip);

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
const RETRY = { attempts: 5, initialMs: 1000, maxMs: 5000, multiplier: 1.5, jitter: 0.2 } as const;

export interface UndiciTransportOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Default `none`. */
  readonly compression?: 'gzip' | 'none';
  /** PEM texts: a CA to trust instead of the system's, a client certificate and its key. */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  /** For tests: the random source of the retry jitter and the wait between attempts. */
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export function createUndiciTransport(options: UndiciTransportOptions): IExporterTransport {
  const target = new URL(options.url);
  // One connection is plenty for batches every few seconds; a second lets a retry not queue behind a stuck one.
  const agent = new Agent({ connections: 2, keepAliveTimeout: 4_000, connect: { ...options.tls } });
  const gzipped = options.compression === 'gzip';
  const headers = Object.entries({ ...options.headers, ...(gzipped && { 'content-encoding': 'gzip' }) }).flat();
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
  const once = (data: Uint8Array, timeoutMillis: number) =>
    post(agent, { origin: target.origin, path: `${target.pathname}${target.search}`, headers, body: data }, timeoutMillis);

  return {
    async send(raw, timeoutMillis) {
      const deadline = Date.now() + timeoutMillis;
      const data = gzipped ? await gzipAsync(raw) : raw;
      let result = await once(data, timeoutMillis);
      let backoff: number = RETRY.initialMs;
      for (let left = RETRY.attempts; result.status === 'retryable' && left > 0; left--) {
        const jittered = Math.min(backoff * (1 + (random() * 2 - 1) * RETRY.jitter), RETRY.maxMs);
        backoff *= RETRY.multiplier;
        const wait = result.retryInMillis ?? jittered;
        const remaining = deadline - Date.now();
        if (wait > remaining) return result;
        await sleep(Math.max(0, wait));
        result = await once(data, deadline - Date.now());
      }
      return result;
    },
    shutdown() {
      void agent.close();
    },
  };
}

type Request = Pick<Dispatcher.DispatchOptions, 'origin' | 'path' | 'headers'> & { readonly body: Uint8Array };

/** One POST; resolves (never rejects) with the OTLP transport outcome. */
function post(agent: Dispatcher, request: Request, timeoutMillis: number): Promise<ExportResponse> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let status = 0;
    let statusText = '';
    let retryAfter: string | undefined;
    let controller: Dispatcher.DispatchController | undefined;
    let timedOut = false;
    const timer = setTimeout(
      () => {
        timedOut = true;
        controller?.abort(new Error('Request timed out'));
      },
      Math.max(1, timeoutMillis),
    );
    const settle = (r: ExportResponse) => {
      clearTimeout(timer);
      resolve(r);
    };
    agent.dispatch(
      { ...request, method: 'POST', headersTimeout: timeoutMillis, bodyTimeout: timeoutMillis },
      {
        onRequestStart(c) {
          controller = c;
          if (timedOut) c.abort(new Error('Request timed out'));
        },
        onResponseStart(_c, statusCode, responseHeaders, message) {
          status = statusCode;
          statusText = message ?? '';
          const ra = responseHeaders['retry-after'];
          retryAfter = Array.isArray(ra) ? ra[0] : ra;
        },
        onResponseData(c, chunk) {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) c.abort(new Error(`OTLP export response body exceeded ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(chunk);
        },
        onResponseEnd() {
          const body = Buffer.concat(chunks);
          if (status >= 200 && status <= 299) settle({ status: 'success', data: body });
          else if (RETRYABLE_STATUS.has(status)) settle({ status: 'retryable', retryInMillis: retryAfterMillis(retryAfter) });
          else settle({ status: 'failure', error: new OTLPExporterError(statusText, status, body.toString()) });
        },
        onResponseError(_c, error) {
          if (timedOut) settle({ status: 'retryable', error: new Error('Request timed out') });
          else if (status >= 200 && status <= 299) settle({ status: 'success' });
          else if (RETRYABLE_STATUS.has(status)) settle({ status: 'retryable', error, retryInMillis: retryAfterMillis(retryAfter) });
          else {
            const code = (error as { code?: unknown }).code;
            const retryable = status === 0 && typeof code === 'string' && RETRYABLE_NETWORK_CODES.has(code);
            settle(retryable ? { status: 'retryable', error } : { status: 'failure', error });
          }
        },
      },
    );
  });
}

/** Retry-After as ms (delta-seconds or an HTTP date), as the OTLP exporter reads it; undefined when absent. */
export function retryAfterMillis(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number.parseInt(value, 10);
  if (Number.isInteger(seconds)) return seconds > 0 ? seconds * 1000 : -1;
  const delay = new Date(value).getTime() - now;
  return delay >= 0 ? delay : 0;
}

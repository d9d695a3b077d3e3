import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { type CollectedSpan, collectSpans } from './collect-spans.ts';
import { decodeTraceRequestProtobuf, encodeTraceResponseProtobuf } from './otlp-trace-schema.ts';

/** A real OTLP/HTTP trace receiver on 127.0.0.1, for tests; disposable with `await using`. */
export interface OtlpReceiver extends AsyncDisposable {
  /** Base endpoint, `http://127.0.0.1:<port>`: what `telemetry.tracing.endpoint` takes. */
  readonly url: string;
  /** The full traces URL, `<url>/v1/traces`. */
  readonly tracesUrl: string;
  /** Every span received so far, in arrival order (a copy). */
  spans(): CollectedSpan[];
  /** Number of export requests accepted so far (a request may carry many spans). */
  requestCount(): number;
  /**
   * Resolves with all spans once `predicate(allSpans)` holds; checked at once and after every
   * export request. Rejects after `timeoutMs` with a message listing what did arrive.
   */
  waitForSpans(predicate: (spans: readonly CollectedSpan[]) => boolean, timeoutMs?: number): Promise<CollectedSpan[]>;
  /** Forgets the spans received so far. */
  clear(): void;
  close(): Promise<void>;
}

export interface OtlpReceiverOptions {
  /** Largest accepted body before decompression (default 16 MiB, answered 413 beyond). */
  maxBodyBytes?: number;
  /** Address to listen on (default 127.0.0.1); a guest's collector host listens on its own address. */
  host?: string;
  /** Port (default 0: an ephemeral one); 4318 is OTLP/HTTP's. */
  port?: number;
}

const PROTOBUF = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

/**
 * Starts an OTLP/HTTP receiver (OTLP spec, "OTLP/HTTP") on 127.0.0.1 and an ephemeral port (or `host`/`port`).
 * It accepts POST /v1/traces as binary protobuf or JSON, optionally gzip-encoded, answers as an
 * OpenTelemetry Collector does (200 with an ExportTraceServiceResponse in the request's encoding;
 * 400 for an undecodable body, 404/405/415 otherwise), and keeps the spans in memory.
 */
export async function startOtlpReceiver(options: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const maxBodyBytes = options.maxBodyBytes ?? 16 * 1024 * 1024;
  let received: CollectedSpan[] = [];
  let requests = 0;
  const arrivals = new EventEmitter();

  const server = createServer((req, res) => {
    handle(req, res, maxBodyBytes).then(
      (spans) => {
        if (spans === undefined) return;
        received.push(...spans);
        requests += 1;
        arrivals.emit('spans');
      },
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;

  const close = (): Promise<void> =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });

  return {
    url,
    tracesUrl: `${url}/v1/traces`,
    spans: () => [...received],
    requestCount: () => requests,
    waitForSpans: (predicate, timeoutMs = 10_000) => waitFor(arrivals, () => received, predicate, timeoutMs),
    clear: () => {
      received = [];
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function waitFor(
  arrivals: EventEmitter,
  current: () => CollectedSpan[],
  predicate: (spans: readonly CollectedSpan[]) => boolean,
  timeoutMs: number,
): Promise<CollectedSpan[]> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!predicate(current())) return;
      cleanup();
      resolve([...current()]);
    };
    const timer = setTimeout(() => {
      cleanup();
      const seen = current().map((s) => `${s.serviceName}:${s.kind}:${s.name}`);
      reject(new Error(`OTLP receiver: condition not met within ${timeoutMs} ms; ${seen.length} span(s) seen: ${seen.join(', ')}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      arrivals.off('spans', check);
    };
    arrivals.on('spans', check);
    check();
  });
}

/** Answers one request; resolves with the spans it carried, or undefined when it was refused. */
async function handle(req: IncomingMessage, res: ServerResponse, maxBodyBytes: number): Promise<CollectedSpan[] | undefined> {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/v1/traces') return refuse(res, 404, 'only /v1/traces is served');
  if (req.method !== 'POST') return refuse(res, 405, 'POST only');
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== PROTOBUF && type !== JSON_TYPE) return refuse(res, 415, `unsupported content-type '${type}'`);

  const body = await readBody(req, maxBodyBytes);
  if (body === undefined) return refuse(res, 413, 'body too large');
  let spans: CollectedSpan[];
  try {
    const raw = req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body;
    spans =
      type === PROTOBUF
        ? collectSpans(decodeTraceRequestProtobuf(raw), 'protobuf')
        : collectSpans(JSON.parse(raw.toString('utf8')), 'json');
  } catch (err) {
    return refuse(res, 400, `undecodable OTLP ${type} body: ${(err as Error).message}`);
  }
  if (type === PROTOBUF) {
    res.writeHead(200, { 'content-type': PROTOBUF }).end(encodeTraceResponseProtobuf());
  } else {
    res.writeHead(200, { 'content-type': JSON_TYPE }).end('{}');
  }
  return spans;
}

function refuse(res: ServerResponse, status: number, message: string): undefined {
  res.writeHead(status, { 'content-type': 'text/plain' }).end(message);
  return undefined;
}

async function readBody(req: IncomingMessage, maxBodyBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBodyBytes) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

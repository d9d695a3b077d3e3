import { type ClientHttp2Session, connect, constants, type IncomingHttpHeaders } from 'node:http2';
import { isIP } from 'node:net';
import { deadline, deadlineDetail, errorDetail } from './deadline.ts';
import { type GrpcCheckSpec, invalid } from './spec.ts';
import type { Checker, CheckResult, CheckTarget } from './types.ts';

/** The method every gRPC health server implements (grpc/grpc doc/health-checking.md). */
const CHECK_PATH = '/grpc.health.v1.Health/Check';
/** HealthCheckResponse.ServingStatus, by number. */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
/** gRPC status codes by number (grpc/grpc doc/statuscodes.md), for details a reader can act on. */
const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];
/** A health response is two bytes of protobuf; anything much bigger is not one. */
const MAX_RESPONSE_BYTES = 64 * 1024;

type Verdict = { readonly ok: boolean; readonly detail: string };

/**
 * nginx plus `health_check type=grpc`, Envoy's `grpc_health_check`: calls `grpc.health.v1.Health/Check`
 * for `service` ('' = the server as a whole) over h2c, or h2 over TLS with `tls`. Up only when the call
 * ends with grpc-status 0 and the answer is SERVING; any other status, an error or the deadline is down.
 * Each check opens and closes its own HTTP/2 connection, as the HTTP checker does, so it proves a new
 * connection can be made.
 *
 * The client is node:http2 with the two messages encoded by hand (healthCheckRequest, servingStatus), not
 * @grpc/grpc-js: grpc-js would still need a protobuf library (protobufjs through proto-loader) or these
 * same hand-written serializers, and this package is loaded by every director command, where three
 * dependencies for a one-field message cost more than the 30 lines below.
 */
export class GrpcChecker implements Checker {
  readonly kind = 'grpc' as const;
  readonly #spec: GrpcCheckSpec;
  readonly #request: Buffer;

  constructor(spec: GrpcCheckSpec) {
    if (spec.kind !== 'grpc') invalid(`grpc health check: kind must be grpc, got ${String(spec.kind)}`);
    if (spec.service !== undefined && typeof spec.service !== 'string') invalid('grpc health check: service must be a string');
    this.#spec = spec;
    this.#request = healthCheckRequest(spec.service ?? '');
  }

  async check(target: CheckTarget, timeoutMs: number, signal?: AbortSignal): Promise<CheckResult> {
    using d = deadline(timeoutMs, signal);
    let verdict: Verdict;
    let session: ClientHttp2Session | undefined;
    try {
      session = this.#connect(target);
      verdict = await this.#call(session, d.signal);
    } catch (err) {
      verdict = { ok: false, detail: d.reason ? deadlineDetail(d, timeoutMs) : errorDetail(err) };
    } finally {
      session?.destroy();
    }
    return { ...verdict, durationMs: d.elapsedMs() };
  }

  #connect(target: CheckTarget): ClientHttp2Session {
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    const tls = this.#spec.tls === true;
    const session = connect(`${tls ? 'https' : 'http'}://${host}:${target.port}`, {
      rejectUnauthorized: this.#spec.rejectUnauthorized ?? true,
      // SNI takes a name only (RFC 6066 §3); node warns when given an address.
      ...(tls && isIP(target.host) !== 0 ? { servername: '' } : {}),
      // The pool's CAs, client certificate and server name (after the line above: its name wins over none).
      ...(tls ? this.#spec.tlsFiles : {}),
    });
    // A connection error also fails the stream (handled in #call); this listener keeps it from being unhandled.
    session.on('error', () => {});
    return session;
  }

  #call(session: ClientHttp2Session, signal: AbortSignal): Promise<Verdict> {
    return new Promise<Verdict>((resolve, reject) => {
      const stream = session.request(
        {
          [constants.HTTP2_HEADER_METHOD]: 'POST',
          [constants.HTTP2_HEADER_PATH]: CHECK_PATH,
          'content-type': 'application/grpc',
          te: 'trailers',
          'user-agent': 'tiergate-health',
        },
        { signal },
      );
      let headers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (h) => {
        headers = h;
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) stream.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
        else chunks.push(chunk);
      });
      stream.on('trailers', (trailers) => {
        headers = { ...headers, ...trailers };
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(judge(headers, Buffer.concat(chunks))));
      stream.end(this.#request);
    });
  }
}

/** The verdict from the call's headers + trailers and its response body. */
function judge(h: IncomingHttpHeaders, body: Buffer): Verdict {
  const status = Number(h[constants.HTTP2_HEADER_STATUS]);
  if (status !== 200) return { ok: false, detail: `HTTP ${status}, not a gRPC response` };
  const grpcStatus = h['grpc-status'];
  if (grpcStatus === undefined) return { ok: false, detail: 'no grpc-status in the response' };
  const code = Number(grpcStatus);
  if (code !== 0) {
    const message = typeof h['grpc-message'] === 'string' ? `: ${decodeURIComponent(h['grpc-message'])}` : '';
    return { ok: false, detail: `grpc-status ${code} (${GRPC_CODES[code] ?? 'unknown code'})${message}` };
  }
  const serving = servingStatus(body);
  if (serving === undefined) return { ok: false, detail: 'malformed HealthCheckResponse' };
  const name = SERVING_STATUS[serving] ?? `status ${serving}`;
  return { ok: serving === 1, detail: name };
}

/**
 * One gRPC message (a 0 compressed flag and a 4-byte big-endian length, gRPC's PROTOCOL-HTTP2.md) holding
 * a HealthCheckRequest: `string service = 1`, so tag 0x0a (field 1, length-delimited), a varint length and
 * the UTF-8 bytes. An empty name is sent as an empty field, as protobufjs (grpc-js) does; servers read
 * it as the absent field's default, ''.
 */
export function healthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const message = Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  for (; n > 0x7f; n >>>= 7) bytes.push((n & 0x7f) | 0x80);
  bytes.push(n);
  return Buffer.from(bytes);
}

/**
 * The `ServingStatus status = 1` of the one HealthCheckResponse in `body`, or undefined when it is not one
 * uncompressed message. A missing field is 0 (UNKNOWN, proto3's default); other fields are skipped.
 */
export function servingStatus(body: Buffer): number | undefined {
  if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) return undefined;
  let status = 0;
  let i = 5;
  const read = (): number | undefined => {
    let value = 0;
    for (let shift = 0; shift < 35 && i < body.length; shift += 7) {
      const b = body[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
    return undefined;
  };
  while (i < body.length) {
    const tag = read();
    if (tag === undefined) return undefined;
    const wire = tag & 7;
    if (wire === 0) {
      const v = read();
      if (v === undefined) return undefined;
      if (tag >>> 3 === 1) status = v;
    } else if (wire === 2) {
      const len = read();
      if (len === undefined || i + len > body.length) return undefined;
      i += len;
    } else if (wire === 1 || wire === 5) i += wire === 1 ? 8 : 4;
    else return undefined;
  }
  return i === body.length ? status : undefined;
}

import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { trace } from '@opentelemetry/api';
import { validateConfig } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import { collectSpans, decodeTraceRequestProtobuf } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveOtlpExport } from '../src/exporters/otlp-export-settings.ts';
import { otlpTracesEndpoint, startTelemetry, type TelemetrySettings } from '../src/index.ts';

const tracingOf = (tracing: Record<string, unknown>): TelemetrySettings['tracing'] =>
  validateConfig({ version: 1, telemetry: { tracing } }).telemetry.tracing;

describe('resolveOtlpExport: telemetry.tracing and OTEL_EXPORTER_OTLP_* (the spec precedence)', () => {
  const noFiles = (path: string): string => `pem of ${path}`;

  it('without either: the spec defaults (127.0.0.1:4318/v1/traces, no compression, 10 s, no headers, system CAs)', () => {
    expect(resolveOtlpExport(tracingOf({}), {}, undefined, noFiles)).toEqual({
      protocol: 'http/protobuf',
      url: 'http://127.0.0.1:4318/v1/traces',
      headers: {},
      compression: 'none',
      timeoutMillis: 10_000,
      tls: {},
    });
  });

  it('endpoint: the file, else …_TRACES_ENDPOINT as it is, else …_ENDPOINT with /v1/traces appended to its path', () => {
    const both = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t.example/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'https://g.example/otlp/' };
    expect(otlpTracesEndpoint(tracingOf({ endpoint: 'http://file:4318' }), both)).toBe('http://file:4318/v1/traces');
    expect(otlpTracesEndpoint(tracingOf({}), both)).toBe('https://t.example/custom');
    expect(otlpTracesEndpoint(tracingOf({}), { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://g.example/otlp/' })).toBe(
      'https://g.example/otlp/v1/traces',
    );
  });

  it('headers merge per name: generic variable < traces variable < the file; values are percent-decoded', () => {
    const env = {
      OTEL_EXPORTER_OTLP_HEADERS: 'x-generic=g,x-both=generic,x-all=generic',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-both=traces,x-all=traces,authorization=Basic%20dTpw',
    };
    expect(resolveOtlpExport(tracingOf({ headers: { 'x-all': 'file' } }), env, undefined, noFiles).headers).toEqual({
      'x-generic': 'g',
      'x-both': 'traces',
      'x-all': 'file',
      authorization: 'Basic dTpw',
    });
  });

  it('protocol, compression, timeout and TLS files: the file, else the traces variable, else the generic one', () => {
    const env = {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'none',
      OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'gzip',
      OTEL_EXPORTER_OTLP_TIMEOUT: '1500',
      OTEL_EXPORTER_OTLP_CERTIFICATE: '/generic-ca.pem',
      OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: '/traces-cert.pem',
      OTEL_EXPORTER_OTLP_CLIENT_KEY: '/generic-key.pem',
    };
    expect(resolveOtlpExport(tracingOf({}), env, undefined, noFiles)).toMatchObject({
      protocol: 'http/json',
      compression: 'gzip',
      timeoutMillis: 1500,
      tls: { ca: 'pem of /generic-ca.pem', cert: 'pem of /traces-cert.pem', key: 'pem of /generic-key.pem' },
    });
    const file = tracingOf({ protocol: 'http/protobuf', compression: 'none', timeout: '2s', tls: { ca: '/file-ca.pem' } });
    expect(resolveOtlpExport(file, env, undefined, noFiles)).toMatchObject({
      protocol: 'http/protobuf',
      compression: 'none',
      timeoutMillis: 2000,
      tls: { ca: 'pem of /file-ca.pem' },
    });
    expect(resolveOtlpExport(file, env, 300, noFiles).timeoutMillis).toBe(300); // the caller's own option
  });

  it('refuses what it cannot use, naming the variable or the config path', () => {
    const refused = (tracing: Record<string, unknown>, env: Record<string, string>, readFile = noFiles): string => {
      try {
        resolveOtlpExport(tracingOf(tracing), env, undefined, readFile);
      } catch (err) {
        expect(isTgError(err, 'TG_TELEMETRY_SETUP')).toBe(true);
        return (err as Error).message;
      }
      throw new Error('not refused');
    };
    expect(refused({}, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http' })).toMatch(/^OTEL_EXPORTER_OTLP_PROTOCOL: 'http' is not a protocol/);
    expect(refused({}, { OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'br' })).toMatch(/^OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'br'/);
    expect(refused({}, { OTEL_EXPORTER_OTLP_TIMEOUT: '10s' })).toMatch(
      /^OTEL_EXPORTER_OTLP_TIMEOUT: '10s' is not a timeout in milliseconds/,
    );
    expect(refused({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toMatch(/^OTEL_EXPORTER_OTLP_ENDPOINT: /);
    expect(refused({}, { OTEL_EXPORTER_OTLP_HEADERS: 'bad name=1' })).toMatch(/^OTEL_EXPORTER_OTLP_HEADERS: 'bad name'/);
    expect(refused({}, { OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/c.pem' })).toMatch(/_CLIENT_KEY/);
    const unreadable = (path: string): string => {
      throw new Error(`ENOENT: ${path}`);
    };
    expect(refused({ tls: { ca: '/nope.pem' } }, {}, unreadable)).toMatch(/^telemetry\.tracing\.tls\.ca: cannot read '\/nope\.pem'/);
  });

  it('the schema refuses a client certificate without its key and a header name with a space', () => {
    expect(() => tracingOf({ tls: { cert: '/c.pem' } })).toThrow(/telemetry\.tracing\.tls\.cert.*go together/s);
    expect(() => tracingOf({ headers: { 'x y': '1' } })).toThrow(/telemetry\.tracing\.headers.*not an HTTP header name/s);
  });
});

/** One request as the receiver saw it. */
interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The body as sent (gzip still on). */
  readonly body: Buffer;
  /** CN of the client certificate, over TLS. */
  readonly clientCn?: string;
}

/** A real OTLP/HTTP receiver on port 0 (http, or https asking for a client certificate) that records each request. */
async function receiver(tls?: { key: string; cert: string; clientCa: string }) {
  const received: Received[] = [];
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const peer = tls ? (req.socket as TLSSocket).getPeerCertificate() : undefined;
    received.push({
      path: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks),
      clientCn: peer?.subject?.CN as string | undefined,
    });
    const json = (req.headers['content-type'] ?? '').startsWith('application/json');
    res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : '');
  };
  const server = tls
    ? createHttpsServer({ key: tls.key, cert: tls.cert, ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }, handler)
    : createHttpServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    received,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The span names in one request's body, decoded as the content-type and content-encoding say. */
function spanNames(r: Received): string[] {
  const raw = r.headers['content-encoding'] === 'gzip' ? gunzipSync(r.body) : r.body;
  const json = (r.headers['content-type'] ?? '').startsWith('application/json');
  return collectSpans(json ? JSON.parse(raw.toString('utf8')) : decodeTraceRequestProtobuf(raw), json ? 'json' : 'protobuf').map(
    (s) => s.name,
  );
}

const PIPELINES = [
  { protocol: 'http/protobuf', exportThread: true },
  { protocol: 'http/protobuf', exportThread: false },
  { protocol: 'http/json', exportThread: false },
] as const;

async function exportOneSpan(tracing: Record<string, unknown>, env: Record<string, string>, exportThread: boolean, name: string) {
  const heard: string[] = [];
  const settings = validateConfig({ version: 1, telemetry: { tracing: { enabled: true, ...tracing } } }).telemetry;
  const handle = await startTelemetry(settings, {
    tier: 'proxy',
    version: '1',
    env,
    exportThread,
    exportTimeoutMs: 5_000,
    onDiagnostic: (level, message) => heard.push(`${level}: ${message}`),
  });
  trace.getTracer('t').startSpan(name).end();
  await handle.shutdown();
  return heard;
}

describe.each(PIPELINES)('the $protocol exporter (export thread: $exportThread) against a real receiver', ({ protocol, exportThread }) => {
  it('sends the file and environment headers, gzips the body, and finds the endpoint in OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
    await using rx = await receiver();
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: `${rx.base}/otlp`,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-generic=g,x-both=env',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-signal=s%20v',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
    };
    const tracing = { protocol, headers: { Authorization: 'Bearer from-file', 'x-both': 'file' } };
    const heard = await exportOneSpan(tracing, env, exportThread, 'gzipped');
    expect(heard).toEqual([]);
    expect(rx.received).toHaveLength(1);
    const [r] = rx.received;
    expect(r!.path).toBe('/otlp/v1/traces');
    expect(r!.headers).toMatchObject({
      authorization: 'Bearer from-file',
      'x-both': 'file',
      'x-generic': 'g',
      'x-signal': 's v',
      'content-encoding': 'gzip',
      'content-type': protocol === 'http/json' ? 'application/json' : 'application/x-protobuf',
    });
    expect(spanNames(r!)).toEqual(['gzipped']);
  });

  it('the signal endpoint variable is used as it is, and the file endpoint beats both variables', async () => {
    await using rx = await receiver();
    const env = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${rx.base}/as-is`, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9/never' };
    await exportOneSpan({ protocol }, env, exportThread, 'signal');
    await exportOneSpan({ protocol, endpoint: `${rx.base}/file` }, env, exportThread, 'file');
    expect(rx.received.map((r) => [r.path, r.headers['content-encoding'], spanNames(r)])).toEqual([
      ['/as-is', undefined, ['signal']],
      ['/file/v1/traces', undefined, ['file']],
    ]);
  });
});

describe('the protocol from the environment', () => {
  it('OTEL_EXPORTER_OTLP_PROTOCOL=http/json picks the JSON exporter when the file names no protocol; grpc is refused', async () => {
    await using rx = await receiver();
    await exportOneSpan({}, { OTEL_EXPORTER_OTLP_ENDPOINT: rx.base, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, false, 'json');
    expect(rx.received.map((r) => [r.headers['content-type'], spanNames(r)])).toEqual([['application/json', ['json']]]);
    const err = await exportOneSpan({}, { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }, false, 'x').catch((e: unknown) => e);
    expect(isTgError(err, 'TG_TELEMETRY_SETUP')).toBe(true);
  });
});

describe('TLS to the collector: a CA of its own and a client certificate (mutual TLS)', () => {
  let dir: string;
  let files: { serverKey: string; serverCert: string; clientKey: string; clientCert: string };
  let pems: { key: string; cert: string; clientCa: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tg-otlp-tls-'));
    const selfSigned = async (name: string, cn: string, san: string) => {
      const [key, cert] = [join(dir, `${name}-key.pem`), join(dir, `${name}-cert.pem`)];
      const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`, '-addext', san];
      await promisify(execFile)('openssl', [...args, '-keyout', key, '-out', cert]).catch((err: unknown) => {
        throw new Error('these tests need the openssl command (apt-get install openssl)', { cause: err });
      });
      return [key, cert] as const;
    };
    const [serverKey, serverCert] = await selfSigned('server', 'collector', 'subjectAltName=IP:127.0.0.1');
    const [clientKey, clientCert] = await selfSigned('client', 'tiergate-client', 'extendedKeyUsage=clientAuth');
    files = { serverKey, serverCert, clientKey, clientCert };
    pems = {
      key: await readFile(serverKey, 'utf8'),
      cert: await readFile(serverCert, 'utf8'),
      clientCa: await readFile(clientCert, 'utf8'),
    };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each(PIPELINES)(
    '$protocol (export thread: $exportThread): from telemetry.tracing.tls, and from the environment',
    async ({ protocol, exportThread }) => {
      await using rx = await receiver(pems);
      const tls = { ca: files.serverCert, cert: files.clientCert, key: files.clientKey };
      expect(await exportOneSpan({ protocol, endpoint: rx.base, tls }, {}, exportThread, 'from-file')).toEqual([]);
      const env = {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${rx.base}/v1/traces`,
        OTEL_EXPORTER_OTLP_CERTIFICATE: files.serverCert,
        OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: files.clientCert,
        OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: files.clientKey,
      };
      expect(await exportOneSpan({ protocol }, env, exportThread, 'from-env')).toEqual([]);
      expect(rx.received.map((r) => [r.clientCn, spanNames(r)])).toEqual([
        ['tiergate-client', ['from-file']],
        ['tiergate-client', ['from-env']],
      ]);
    },
  );
});

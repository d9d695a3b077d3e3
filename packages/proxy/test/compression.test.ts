import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants, createGunzip, gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptsGzip } from '../src/compression.ts';
import { REQUEST_CHANNEL, type RequestEvent } from '../src/index.ts';
import { certFiles, h2client } from './h2-helpers.ts';
import { collect, rawExchange, server, startTestProxy, startUpstream } from './helpers.ts';

const HTML = `<!doctype html><title>t</title>${'<p>tiergate compresses what nginx would</p>'.repeat(200)}`;

/** An upstream answering `/page` with HTML (and the headers a test asks for in `x-set-*` request fields). */
function page(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  const status = Number(req.headers['x-status'] ?? 200);
  const headers: Record<string, string> = {
    'content-type': String(req.headers['x-type'] ?? 'text/html; charset=utf-8'),
    etag: '"v1"',
    'accept-ranges': 'bytes',
    vary: 'Cookie',
  };
  for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-set-')) headers[k.slice(6)] = String(v);
  const body = req.headers['x-body'] === undefined ? HTML : String(req.headers['x-body']);
  if (req.headers['x-no-length'] === undefined) headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

async function get(url: string, headers: Record<string, string>, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { method, headers });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

describe('acceptsGzip (Accept-Encoding, RFC 9110 §12.5.3, as nginx reads it)', () => {
  it.each([
    ['gzip', true],
    ['gzip, deflate, br', true],
    ['br;q=1.0, GZIP;q=0.5', true],
    ['x-gzip', true],
    ['gzip;q=0', false],
    ['gzip; q=0.000', false],
    ['br, *', false],
    ['identity', false],
    ['', false],
  ] as const)('%j → %s', (value, expected) => {
    expect(acceptsGzip(value)).toBe(expected);
  });
});

describe('proxy.gzip', () => {
  let up: Awaited<ReturnType<typeof startUpstream>>;
  let p: Awaited<ReturnType<typeof startTestProxy>>;
  beforeAll(async () => {
    up = await startUpstream(page);
    p = await startTestProxy({ gzip: { enabled: true }, pools: { app: { servers: [server(up)] } } });
  });
  afterAll(async () => {
    await p[Symbol.asyncDispose]();
    await up[Symbol.asyncDispose]();
  });

  it('compresses a listed type for a client that accepts gzip: Content-Encoding, no length, weak ETag, Vary; the event counts the bytes sent', async () => {
    using events = collect<RequestEvent>(REQUEST_CHANNEL);
    const res = await get(`${p.url}/page`, { 'accept-encoding': 'gzip, br' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['accept-ranges']).toBeUndefined();
    expect(res.headers.etag).toBe('W/"v1"');
    expect(res.headers.vary).toBe('Cookie, Accept-Encoding');
    expect(gunzipSync(res.body).toString()).toBe(HTML);
    expect(res.body.length).toBeLessThan(HTML.length / 10);
    expect(events.at(-1)!.bytesSent).toBe(res.body.length);
  });

  it('sends the response as it came when nginx would not compress it (or RFC 9110 forbids it)', async () => {
    const gz = { 'accept-encoding': 'gzip' };
    const cases: [string, Record<string, string>, ('GET' | 'HEAD')?][] = [
      ['no Accept-Encoding', {}],
      ['gzip;q=0', { 'accept-encoding': 'gzip;q=0' }],
      ['only *', { 'accept-encoding': '*' }],
      ['a type not listed', { ...gz, 'x-type': 'image/png' }],
      ['already encoded', { ...gz, 'x-set-content-encoding': 'br' }],
      ['shorter than min_length', { ...gz, 'x-body': 'tiny' }],
      ['Cache-Control: no-transform', { ...gz, 'x-set-cache-control': 'public, no-transform' }],
      ['status 500', { ...gz, 'x-status': '500' }],
      ['status 206', { ...gz, 'x-status': '206' }],
      ['HEAD', gz, 'HEAD'],
    ];
    for (const [why, headers, method] of cases) {
      const res = await get(`${p.url}/page`, headers, method);
      const expectedBody = method === 'HEAD' ? '' : (headers['x-body'] ?? HTML);
      expect([why, res.headers['content-encoding'] ?? null, res.body.toString()]).toEqual([
        why,
        headers['x-set-content-encoding'] ?? null,
        expectedBody,
      ]);
      expect([why, res.headers.etag]).toEqual([why, '"v1"']);
      expect([why, res.headers['content-length']]).toEqual([why, String(Buffer.byteLength(headers['x-body'] ?? HTML))]);
    }
    // HTTP/1.0 (nginx gzip_http_version 1.1).
    const old = await rawExchange(Number(new URL(p.url).port), 'GET /page HTTP/1.0\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n');
    expect(old).toMatch(/^HTTP\/1\.1 200 /);
    expect(old).not.toMatch(/content-encoding/i);
    expect(old.endsWith(HTML)).toBe(true);
  });

  it('a response without a length is compressed too, and one already gzip-ed is not compressed twice', async () => {
    const res = await get(`${p.url}/page`, { 'accept-encoding': 'gzip', 'x-no-length': '1' });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(res.body).toString()).toBe(HTML);
  });

  it('streams: each upstream chunk reaches the client decompressible before the upstream sends the next', async () => {
    let sendRest: (() => void) | undefined;
    await using slow = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part;');
      sendRest = () => res.end('second part');
    });
    await using sp = await startTestProxy({ gzip: { enabled: true }, pools: { app: { servers: [server(slow)] } } });
    const res = await request(`${sp.url}/`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers['content-encoding']).toBe('gzip');
    const gunzip = createGunzip({ finishFlush: constants.Z_SYNC_FLUSH });
    let text = '';
    gunzip.on('data', (c: Buffer) => {
      text += c.toString();
      if (text === 'first part;') sendRest!();
    });
    res.body.pipe(gunzip);
    await new Promise((r) => gunzip.on('end', r));
    // Had the proxy held the first part until the end, the upstream would never have been told to finish.
    expect(text).toBe('first part;second part');
  });

  it('a large body written in many chunks arrives whole', async () => {
    const line = (i: number) => `${i} ${'abcdefghij'.repeat(i % 17)}\n`;
    await using big = await startUpstream(async (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < 20_000; i++) if (!res.write(line(i))) await new Promise((r) => res.once('drain', r));
      res.end();
    });
    await using bp = await startTestProxy({ gzip: { enabled: true }, pools: { app: { servers: [server(big)] } } });
    const res = await get(`${bp.url}/`, { 'accept-encoding': 'gzip' });
    const expected = Array.from({ length: 20_000 }, (_, i) => line(i)).join('');
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(res.body).toString()).toBe(expected);
  });

  it('a client that leaves mid-response ends the exchange and the upstream request', async () => {
    let upstreamClosed: Promise<unknown> | undefined;
    await using endless = await startUpstream((req, res) => {
      req.resume();
      upstreamClosed = new Promise((r) => res.on('close', r));
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('tick '.repeat(100)), 5);
      res.on('close', () => clearInterval(timer));
    });
    await using ep = await startTestProxy({ gzip: { enabled: true }, pools: { app: { servers: [server(endless)] } } });
    const res = await request(`${ep.url}/`, { headers: { 'accept-encoding': 'gzip' } });
    for await (const _ of res.body) break; // the first chunk, then the client goes away
    await upstreamClosed;
    const deadline = Date.now() + 5000;
    while (ep.proxy.status().inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(ep.proxy.status().inFlight).toBe(0);
  });

  it('HTTP/2 clients get it compressed too', async () => {
    await using certs = await certFiles();
    await using tp = await startTestProxy({
      listeners: [{ address: '127.0.0.1', port: 0, tls: { cert: certs.cert, key: certs.key } }],
      gzip: { enabled: true },
      pools: { app: { servers: [server(up)] } },
    });
    await using c = h2client(`https://localhost:${tp.proxy.addresses()[0]!.port}`);
    const { headers, body } = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const s = c.request({ ':path': '/page', 'accept-encoding': 'gzip' });
      const chunks: Buffer[] = [];
      let h: Record<string, unknown> = {};
      s.on('response', (r) => {
        h = r;
      });
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => resolve({ headers: h, body: Buffer.concat(chunks) }));
      s.on('error', reject);
    });
    expect(headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(body).toString()).toBe(HTML);
  });

  it('is off by default (nginx gzip off)', async () => {
    await using off = await startTestProxy({ pools: { app: { servers: [server(up)] } } });
    const res = await get(`${off.url}/page`, { 'accept-encoding': 'gzip' });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.body.toString()).toBe(HTML);
  });
});

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from '@tiergate/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileTable } from '../loadtest/cpuprofile-table.ts';

// The proxy benchmark's reference loops (loadtest/proxy-bench.ts targets `undici` and `undici-lean`) must do the
// HTTP/1.1 work they are compared on, or their CPU per request would flatter them: keep-alive, pipelined
// requests answered in order, HEAD, HTTP/1.0, Connection: close, request bodies (chunked too) streamed to the
// upstream, and a smuggling attempt refused.

const LOOPS = ['bare-undici-proxy.ts', 'bare-lean-proxy.ts'];

let upstream: Server;
let upPort: number;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
    });
    req.on('end', () => {
      if (req.url === '/chunked') {
        res.write('abc');
        res.end('def');
      } else if (req.url === '/204') {
        res.statusCode = 204;
        res.end();
      } else res.end(`${req.method} ${req.url} body=${n} xff=${req.headers['x-forwarded-for']}\n`);
    });
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  upPort = (upstream.address() as { port: number }).port;
});
afterAll(() => upstream.close());

/** Writes raw bytes on one connection and collects everything the proxy sends until it closes (or 5 s). */
async function exchange(port: number, bytes: string | Buffer): Promise<string> {
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  s.write(bytes);
  let out = '';
  s.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  const timer = setTimeout(() => s.destroy(), 5000);
  await once(s, 'close');
  clearTimeout(timer);
  return out.replace(/^Date: .*\r\n/gim, '');
}

async function waitFor(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const s = connect(port, '127.0.0.1');
      await once(s, 'connect');
      s.destroy();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listened on ${port}`);
}

describe.each(LOOPS)('loadtest/%s', (file) => {
  let proc: ChildProcess;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    proc = spawn(process.execPath, [join(import.meta.dirname, '..', 'loadtest', file), String(port), String(upPort)], {
      stdio: 'ignore',
    });
    await waitFor(port);
  });
  afterAll(() => {
    proc.kill();
  });

  it('answers pipelined requests in order on one keep-alive connection, HEAD and 204 without a body, and closes on Connection: close', async () => {
    const out = await exchange(
      port,
      'GET /1 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n' +
        'HEAD /3 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /204 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const statuses = [...out.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '200', '200', '204', '200']);
    const bodies = [...out.matchAll(/(GET|HEAD) \/\d body=0 xff=127\.0\.0\.1/g)].map((m) => m[0]);
    expect(bodies).toEqual(['GET /1 body=0 xff=127.0.0.1', 'GET /5 body=0 xff=127.0.0.1']);
    // The upstream's answer without Content-Length goes out chunked; the HEAD and 204 answers carry no body.
    expect(out).toMatch(/Transfer-Encoding: chunked\r\n(?:[^\r]*\r\n)*\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\nHTTP\/1\.1 200/i);
    expect(out).toMatch(/HTTP\/1\.1 204 No Content\r\n(?:[^\r]*\r\n)*\r\nHTTP\/1\.1 200/);
    expect(out.match(/Connection: close/gi)).toHaveLength(1);
  });

  it('streams a chunked request body and a Content-Length one to the upstream', async () => {
    const big = 'x'.repeat(200_000);
    const out = await exchange(
      port,
      `POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n5\r\nhello\r\n0\r\n\r\n` +
        `POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`,
    );
    expect(out).toContain(`POST /c body=${big.length + 5} `);
    expect(out).toContain('POST /l body=3 ');
  });

  it('keeps an HTTP/1.0 client that asks for keep-alive, and closes after an unframed answer to HTTP/1.0', async () => {
    const out = await exchange(port, 'GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /chunked HTTP/1.0\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n(?:[^\r]*\r\n)*Connection: keep-alive\r\n/i);
    expect(out).toMatch(/\r\n\r\nabcdef$/);
    expect(out).not.toMatch(/Transfer-Encoding/i);
  });

  it('refuses Content-Length next to Transfer-Encoding: chunked with a 400 and forwards nothing', async () => {
    const out = await exchange(
      port,
      'POST /smuggle HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1\.1 400 /);
    expect(out).not.toContain('body=');
  });
});

describe.each(LOOPS)('loadtest/%s without upstream ports (proxy-bench `-direct` targets)', (file) => {
  it('answers by itself: N bytes for /bN, pipelined, HEAD without a body', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [join(import.meta.dirname, '..', 'loadtest', file), String(port)], { stdio: 'ignore' });
    try {
      await waitFor(port);
      const out = await exchange(
        port,
        'GET /b100 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /b100 HTTP/1.1\r\nHost: a\r\n\r\nGET /b5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      );
      const answers = out.split(/(?=HTTP\/1\.1 )/);
      expect(answers).toHaveLength(3);
      expect(answers[0]).toMatch(/Content-Length: 100\r\n(?:[^\r]*\r\n)*\r\nx{100}$/i);
      expect(answers[1]).toMatch(/Content-Length: 100\r\n(?:[^\r]*\r\n)*\r\n$/i);
      expect(answers[2]).toMatch(/Content-Length: 5\r\n(?:[^\r]*\r\n)*\r\nxxxxx$/i);
    } finally {
      proc.kill();
    }
  });
});

describe('loadtest/cpuprofile-table.ts', () => {
  it("attributes llhttp's WASM to its caller: the lean server side's request parsing, undici's response parsing", () => {
    const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', ''), children: [2, 5] },
        { id: 2, callFrame: frame('execute', 'file:///x/loadtest/bare-lean-proxy.ts'), children: [3] },
        { id: 3, callFrame: frame('js-to-wasm', ''), children: [4] },
        { id: 4, callFrame: frame('wasm-function[20]', 'wasm://wasm/00034eea'), children: [] },
        { id: 5, callFrame: frame('execute', 'file:///x/node_modules/undici/lib/dispatcher/client-h1.js'), children: [6] },
        { id: 6, callFrame: frame('wasm-function[20]', 'wasm://wasm/00034eea'), children: [] },
      ],
      samples: [4, 4, 6],
      timeDeltas: [1000, 1000, 1000],
      startTime: 0,
      endTime: 3000,
    };
    const rows = Object.fromEntries(profileTable(profile).rows.map((r) => [r.category.replace(/ \(.*/, ''), r.ms]));
    expect(rows).toEqual({ 'lean server side': 2, undici: 1 });
  });
});

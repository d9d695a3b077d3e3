// Long-lived exchanges for the director-failover drill of test/stack-vm.test.ts, run in the `client` host's namespace
// while client.cjs keeps sending short requests. Through the VIP (so through lb1, a proxy and an app server):
//   - a paced download: GET /download?bytes=B&rate=R of the demo app (its bytes are a known pattern), read to the end;
//     every byte is checked and the longest pause between two chunks is kept;
//   - a WebSocket to the demo app's echo (/ws): a numbered message every 200 ms, each answer checked, until
//     DIR/failover.stop exists (at most 120 s); the longest pause between two answers is kept.
// Writes DIR/failover.ready once the download's headers and the first echo are in, and DIR/failover.json when both
// are done, with each connection's local port (the test finds them in lb2's connection table before the failover).
// Arguments: VIP DIR BYTES RATE.

import fs from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import WebSocket from 'ws';
import { downloadByteAt } from '../../packages/demo-app/src/long-lived.ts';

const [vip, dir, bytesArg, rateArg] = process.argv.slice(2) as [string, string, string, string];
const total = Number(bytesArg);

interface Download {
  /** The client's port of the download's TCP connection, to find it in the directors' connection tables. */
  localPort?: number;
  bytes: number;
  mismatches: number;
  maxGapMs: number;
  status?: number;
  complete?: boolean;
  error?: string;
  end?: number;
}
interface Echo {
  /** The client's port of the WebSocket's TCP connection. */
  localPort?: number;
  sent: number;
  answered: number;
  wrong: number;
  maxGapMs: number;
  closeCode?: number;
  error?: string;
  end?: number;
}

function download(onHeaders: (localPort: number | undefined) => void): Promise<Download> {
  return new Promise((resolve) => {
    const r: Download = { bytes: 0, mismatches: 0, maxGapMs: 0 };
    let last = Date.now();
    const req = http.get({ host: vip, port: 80, path: `/download?bytes=${total}&rate=${rateArg}`, agent: false }, (res) => {
      r.status = res.statusCode;
      r.localPort = res.socket.localPort;
      onHeaders(r.localPort);
      res.on('data', (chunk: Buffer) => {
        const now = Date.now();
        r.maxGapMs = Math.max(r.maxGapMs, now - last);
        last = now;
        for (let i = 0; i < chunk.length; i++) if (chunk[i] !== downloadByteAt(r.bytes + i)) r.mismatches++;
        r.bytes += chunk.length;
      });
      res.on('end', () => resolve({ ...r, complete: res.complete, end: Date.now() }));
      res.on('error', (err) => resolve({ ...r, error: String(err), end: Date.now() }));
    });
    req.on('error', (err) => resolve({ ...r, error: String(err), end: Date.now() }));
  });
}

function echo(onFirst: (localPort: number | undefined) => void): Promise<Echo> {
  return new Promise((resolve) => {
    const r: Echo = { sent: 0, answered: 0, wrong: 0, maxGapMs: 0 };
    let last = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const ws = new WebSocket(`ws://${vip}/ws`);
    const deadline = Date.now() + 120_000;
    ws.on('upgrade', (res) => {
      r.localPort = res.socket.localPort;
    });
    ws.on('open', () => {
      timer = setInterval(() => {
        if (fs.existsSync(join(dir, 'failover.stop')) || Date.now() > deadline) {
          clearInterval(timer);
          ws.close(1000);
          return;
        }
        ws.send(`m${r.sent++}`);
      }, 200);
    });
    ws.on('message', (data) => {
      const now = Date.now();
      if (String(data) !== `m${r.answered}`) r.wrong++;
      if (r.answered === 0) onFirst(r.localPort);
      else r.maxGapMs = Math.max(r.maxGapMs, now - last);
      last = now;
      r.answered++;
    });
    ws.on('close', (code) => {
      clearInterval(timer);
      resolve({ ...r, closeCode: code, end: Date.now() });
    });
    ws.on('error', (err) => {
      r.error = String(err);
    });
  });
}

(async () => {
  // The two connections' client ports, for the test to find them in the directors' connection tables.
  const ports: { download?: number | undefined; websocket?: number | undefined } = {};
  let headers = false;
  let first = false;
  const ready = () => headers && first && fs.writeFileSync(join(dir, 'failover.ready'), JSON.stringify(ports));
  const [dl, ws] = await Promise.all([
    download((port) => {
      headers = true;
      ports.download = port;
      ready();
    }),
    echo((port) => {
      first = true;
      ports.websocket = port;
      ready();
    }),
  ]);
  fs.writeFileSync(join(dir, 'failover.json'), JSON.stringify({ download: { ...dl, expected: total }, websocket: ws }));
})().catch((err) => {
  fs.writeFileSync(join(dir, 'failover.json'), JSON.stringify({ error: String((err as Error)?.stack ?? err) }));
  process.exitCode = 1;
});

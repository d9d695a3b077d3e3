import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN } from './run-cli.ts';

/**
 * Issue 17 item 16, on loopback: the proxy node is 127.0.0.1, a client on "the LAN" is 127.0.0.2, a real proxy in
 * front of the VIP (a CDN) is 127.0.0.3. As in LVS-DR, the client's own connection reaches the proxy. The file
 * trusts 127.0.0.3 in `proxy.trusted_proxies` and the proxy node in `apps.trusted_proxies`; the real `tiergate
 * proxy` and `tiergate demo-app` read it. The demo app shows the client address it believes in `<code id="client">`.
 */
const dir = mkdtempSync(join(tmpdir(), 'tg-app-trust-'));
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  rmSync(dir, { recursive: true, force: true });
});

const file = join(dir, 'tiergate.yaml');
const config = (appPort: number) => `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 0 }]
  admin: { address: 127.0.0.1, port: 0 }
  access_log: false
  trusted_proxies: [127.0.0.3]
  pools:
    app:
      servers: [{ address: "127.0.0.1:${appPort}" }]
apps:
  trusted_proxies: [127.0.0.1]
sessions:
  store: memory
  secrets: [app-trust-test-secret-0001]
`;

/** Starts `tiergate ARGS` and waits (bounded) for its "listening on URL" line. */
async function start(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    if (url) return url;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`tiergate ${args[0]} did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The client address the app shows for a request sent from `from` with a forged X-Forwarded-For / X-Real-IP. */
async function seenByApp(proxyUrl: string, from: string): Promise<string | undefined> {
  const dispatcher = new Agent({ localAddress: from });
  try {
    const res = await request(`${proxyUrl}/`, {
      dispatcher,
      headers: { accept: 'text/html', 'x-forwarded-for': '203.0.113.66', 'x-real-ip': '203.0.113.66' },
    });
    const page = await res.body.text();
    expect(res.statusCode).toBe(200);
    return /<code id="client">([^<]*)<\/code>/.exec(page)?.[1];
  } finally {
    await dispatcher.close();
  }
}

describe('apps.trusted_proxies: the app trusts the proxy nodes, not the proxy’s own list', () => {
  it('a client on the proxies’ network cannot choose its address; a trusted proxy in front still can tell it', async () => {
    // The app reads only `sessions` and `apps`: it starts on the file before the pool knows its port.
    writeFileSync(file, config(9));
    const appUrl = await start(['demo-app', '--port', '0', '--instance', 'trust', '-c', file]);
    writeFileSync(file, config(Number(new URL(appUrl).port)));
    const proxyUrl = await start(['proxy', '-c', file]);

    // An untrusted peer: the proxy drops its headers and sends X-Real-IP 127.0.0.2, which the app believes
    // because the proxy node 127.0.0.1 is in apps.trusted_proxies.
    expect(await seenByApp(proxyUrl, '127.0.0.2')).toBe('127.0.0.2');
    // A peer in proxy.trusted_proxies: its X-Forwarded-For names the client, and the app believes the proxy.
    expect(await seenByApp(proxyUrl, '127.0.0.3')).toBe('203.0.113.66');
  });
});

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { configDir, proxyYaml, startProxyProc } from './proxy-ops-helpers.ts';
import { type RunningStack, type StackConfigFile, startStack, writeStackConfig } from './stack-harness.ts';

// The k6 scripts of loadtest/k6 run by the Node runner (loadtest/k6-runner) against the REAL `tiergate up` stack,
// their thresholds enforced through the runner's exit code, as a user runs them with `npm run k6`.

const ROOT = join(import.meta.dirname, '..');
const RUNNER = join(ROOT, 'loadtest/k6-runner/cli.ts');

interface RunnerResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The --summary-export document. */
  summary: { metrics: Record<string, Record<string, unknown>>; root_group: unknown } | undefined;
}

/** Runs one script with the runner (bounded: its own time and request caps, and a kill after `timeoutMs`). */
async function runK6(script: string, env: Record<string, string>, timeoutMs = 60_000): Promise<RunnerResult> {
  const dir = await mkdtemp(join(tmpdir(), 'tg-k6-'));
  try {
    const exportFile = join(dir, 'summary.json');
    const args = [RUNNER, 'run', script, '--summary-export', exportFile, '--max-duration', '45s', '--max-requests', '20000'];
    for (const [k, v] of Object.entries(env)) args.push('-e', `${k}=${v}`);
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    const summary = await readFile(exportFile, 'utf8').then(JSON.parse, () => undefined);
    return { code, stdout, stderr, summary };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A script of a few lines in its own temp file (for the refusal tests). */
async function tinyScript(body: string): Promise<{ path: string } & AsyncDisposable> {
  const dir = await mkdtemp(join(tmpdir(), 'tg-k6-script-'));
  const path = join(dir, 'script.js');
  await writeFile(path, body);
  return { path, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

describe('k6 scripts against tiergate up (Redis sessions)', () => {
  let config: StackConfigFile;
  let stack: RunningStack;
  beforeAll(async () => {
    config = await writeStackConfig();
    stack = await startStack({ config: config.path });
  });
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
    await config?.[Symbol.asyncDispose]();
  });

  it('smoke: every route, every check passes, thresholds met, exit 0, a k6-style summary and export', async () => {
    const r = await runK6('loadtest/k6/smoke.js', { BASE_URL: config.proxyUrl });
    expect(r.stderr).not.toContain('ERRO');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('█ THRESHOLDS');
    expect(r.stdout).toMatch(/✓ 'p\(95\)<\d+' p\(95\)=/);
    expect(r.stdout).toMatch(/http_req_duration\.+: avg=\S+ min=\S+ med=\S+ max=\S+ p\(90\)=\S+ p\(95\)=\S+ p\(99\)=\S+/);
    // 3 VUs × 5 iterations, each 9 requests and 10 checks.
    expect(r.stdout).toMatch(/iterations\.+: 15 /);
    expect(r.summary?.metrics.http_reqs?.count).toBe(15 * 9);
    expect(r.summary?.metrics.checks).toMatchObject({ passes: 15 * 10, fails: 0, value: 1, thresholds: { 'rate==1': false } });
    expect(r.summary?.metrics.http_req_failed).toMatchObject({ passes: 0, thresholds: { 'rate==0': false } });
  });

  it('session-flow (CI profile, 4 VUs for 5 s): logged in and cart intact on every request, on both app servers', async () => {
    const r = await runK6('loadtest/k6/session-flow.js', { BASE_URL: config.proxyUrl, PROFILE: 'ci' });
    expect(r.stderr).not.toContain('ERRO');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("✓ 'rate==1' rate=100.00%");
    const checks = r.summary!.metrics.checks!;
    expect(checks.fails).toBe(0);
    expect(checks.passes as number).toBeGreaterThan(100);
  });
});

describe('k6 session-flow against tiergate up --store memory (the lost-login bug)', () => {
  let config: StackConfigFile;
  let stack: RunningStack;
  beforeAll(async () => {
    config = await writeStackConfig();
    stack = await startStack({ config: config.path, args: ['--store', 'memory'] });
  });
  afterAll(async () => {
    await stack?.[Symbol.asyncDispose]();
    await config?.[Symbol.asyncDispose]();
  });

  it('fails its checks threshold and exits 99, as k6 does when a threshold is crossed', async () => {
    const r = await runK6('loadtest/k6/session-flow.js', { BASE_URL: config.proxyUrl, PROFILE: 'ci' });
    expect(r.code).toBe(99);
    expect(r.stdout).toMatch(/✗ 'rate==1' rate=\d+\.\d+%/);
    expect(r.stderr).toContain("ERRO thresholds on metrics 'checks'");
    // k6's export marks a crossed threshold `true`.
    expect(r.summary?.metrics.checks).toMatchObject({ thresholds: { 'rate==1': true } });
    expect(r.summary?.metrics.checks?.fails as number).toBeGreaterThan(0);
  });
});

describe('k6 websocket script through a real tiergate proxy', () => {
  it('connects, echoes every message in order and closes (k6/ws)', async () => {
    const echo = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    echo.on('connection', (socket) => socket.on('message', (data) => socket.send(data.toString())));
    await once(echo, 'listening');
    try {
      using dir = configDir(proxyYaml({ workers: 1, servers: [`127.0.0.1:${(echo.address() as AddressInfo).port}`] }));
      await using proxy = await startProxyProc(dir.file);
      const r = await runK6('loadtest/k6/websocket.js', { WS_URL: `${proxy.url.replace(/^http/, 'ws')}/echo`, VUS: '2', DURATION: '2s' });
      expect(r.stderr).not.toContain('ERRO');
      expect(r.code).toBe(0);
      expect(r.summary?.metrics.checks).toMatchObject({ fails: 0, value: 1 });
      const sessions = r.summary?.metrics.ws_sessions?.count as number;
      expect(sessions).toBeGreaterThan(0);
      // 5 echoes per session, each message counted once each way.
      expect(r.summary?.metrics.ws_msgs_received?.count).toBe(sessions * 5);
      expect(r.summary?.metrics.ws_msgs_sent?.count).toBe(sessions * 5);
    } finally {
      echo.close();
    }
  });
});

describe('the runner refuses what it does not implement (exit 104, naming it)', () => {
  const cases: [string, string, string][] = [
    ['a k6 module', "import { browser } from 'k6/browser';\nexport default function () {}\n", "import of module 'k6/browser'"],
    [
      'an API of k6/http',
      "import http from 'k6/http';\nexport default function () { http.asyncRequest('GET', 'http://127.0.0.1:9/'); }\n",
      'http.asyncRequest()',
    ],
    [
      'an executor',
      "export const options = { scenarios: { s: { executor: 'externally-controlled', vus: 1, maxVUs: 1, duration: '1s' } } };\nexport default function () {}\n",
      "options.scenarios.s.executor 'externally-controlled'",
    ],
    ['an option', 'export const options = { batch: 10 };\nexport default function () {}\n', 'options.batch'],
    [
      'a threshold on a metric it does not record',
      "export const options = { thresholds: { http_req_tls_handshaking: ['p(95)<1'] } };\nexport default function () {}\n",
      "options.thresholds on metric 'http_req_tls_handshaking'",
    ],
    [
      'a request parameter',
      "import http from 'k6/http';\nexport default function () { http.get('http://127.0.0.1:9/', { auth: 'digest' }); }\n",
      'http params.auth',
    ],
  ];
  for (const [what, source, named] of cases) {
    it(`refuses ${what}`, async () => {
      await using script = await tinyScript(source);
      const r = await runK6(script.path, {}, 20_000);
      expect(r.code).toBe(104);
      expect(r.stderr).toContain(`ERRO refused: ${named}`);
      expect(r.stderr).toContain('is not implemented by the tiergate k6 runner');
      expect(r.stdout).toBe('');
    });
  }
});

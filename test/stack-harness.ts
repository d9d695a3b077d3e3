/**
 * Test harness for `tiergate up`: runs the REAL command (launcher + Node 24) as a child process on a
 * copy of examples/local-stack.yaml whose ports are free ones, reads what it started from its
 * summary, and offers a cookie-jar HTTP client for the session flows through the proxy.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@tiergate/testkit';
import { Agent, request } from 'undici';
import { parse, stringify } from 'yaml';

const ROOT = join(import.meta.dirname, '..');
export const LAUNCHER = join(ROOT, 'packages/cli/bin/tiergate.js');
export const LOCAL_STACK_YAML = join(ROOT, 'examples/local-stack.yaml');
const READY_LINE = 'Ctrl-C stops everything.';

/** A stack config file in its own temp dir (removed on dispose). */
export interface StackConfigFile extends AsyncDisposable {
  readonly path: string;
  readonly proxyUrl: string;
}

/** examples/local-stack.yaml with every port replaced by a free one (and quieter logs). */
export async function writeStackConfig(): Promise<StackConfigFile> {
  const doc = parse(await readFile(LOCAL_STACK_YAML, 'utf8'));
  const [proxyPort, adminPort, app1, app2, redisPort] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()));
  doc.proxy.listeners[0].port = proxyPort;
  doc.proxy.admin.port = adminPort;
  doc.proxy.access_log = false;
  doc.proxy.pools.app.servers = [{ address: `127.0.0.1:${app1}` }, { address: `127.0.0.1:${app2}` }];
  doc.sessions.redis.url = `redis://127.0.0.1:${redisPort}`;
  doc.telemetry.logs.level = 'warn';
  const dir = await mkdtemp(join(tmpdir(), 'tg-stack-test-'));
  const path = join(dir, 'tiergate.yaml');
  await writeFile(path, stringify(doc));
  return { path, proxyUrl: `http://127.0.0.1:${proxyPort}`, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

/** A running `tiergate up` and what it said it started. */
export interface RunningStack extends AsyncDisposable {
  readonly process: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** name (proxy, app-1, app-2, redis) → PID, from the summary. */
  readonly pids: ReadonlyMap<string, number>;
  readonly tempDir: string;
  /** Settles with the exit code (or signal name) once `up` exited. */
  readonly exited: Promise<number | string>;
}

export interface StartStackOptions {
  readonly config: string;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

/** Spawns `tiergate up --config FILE ...ARGS` without waiting for it (for the failure paths). */
export function spawnUp(options: StartStackOptions): {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<number | string>;
} {
  const child = spawn(process.execPath, [LAUNCHER, 'up', '--config', options.config, ...(options.args ?? [])], {
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return { child, out, exited };
}

/**
 * Starts `tiergate up` and resolves once it printed its summary. A stack that cannot start (e.g. no
 * redis-server on this machine) rejects with up's own output: a test failure that says what is missing.
 */
export async function startStack(options: StartStackOptions): Promise<RunningStack> {
  const { child, out, exited } = spawnUp(options);
  let exitedWith: number | string | undefined;
  void exited.then((c) => {
    exitedWith = c;
  });
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (!out.stdout.includes(READY_LINE)) {
    if (exitedWith !== undefined || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `tiergate up did not come up (${exitedWith === undefined ? 'timeout' : `exit ${exitedWith}`}).\n` +
          `stdout:\n${out.stdout}\nstderr (tail):\n${out.stderr.slice(-3000)}`,
      );
    }
    await sleep(50);
  }
  const pids = new Map<string, number>();
  for (const m of out.stdout.matchAll(/^ {2}(\S+)\s+\S+\s+pid (\d+)/gm)) pids.set(m[1]!, Number(m[2]));
  const tempDir = /^ {2}temp dir\s+(\S+)$/m.exec(out.stdout)?.[1] ?? '';
  return {
    process: child,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    pids,
    tempDir,
    exited,
    [Symbol.asyncDispose]: async () => {
      if (exitedWith === undefined) {
        child.kill('SIGINT');
        await Promise.race([exited, sleep(15_000)]);
        if (exitedWith === undefined) child.kill('SIGKILL');
      }
      // Whatever `up` failed to stop must not outlive the test.
      for (const pid of pids.values()) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    },
  };
}

/** True while a process with this PID exists (a zombie counts until reaped). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits (bounded) until none of the PIDs exists; returns those still alive. */
export async function waitGone(pids: Iterable<number>, timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = [...pids].filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/** A response as the session flows need it. */
export interface FlowResponse {
  readonly status: number;
  readonly instance: string;
  readonly body: Record<string, unknown>;
}

/**
 * One browser-like client: a cookie jar over real undici. Hand-rolled jar (name → value, Max-Age=0
 * deletes) because the flows use one host and one path: a full RFC 6265 jar library would add a
 * dependency for rules these requests never exercise.
 */
export class CookieClient implements AsyncDisposable {
  readonly #jar = new Map<string, string>();
  readonly #agent = new Agent({ connections: 4 });
  readonly #base: string;

  constructor(base: string) {
    this.#base = base;
  }

  async send(method: 'GET' | 'POST', path: string, form?: Record<string, string>): Promise<FlowResponse> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#jar.size > 0) headers.cookie = [...this.#jar].map(([k, v]) => `${k}=${v}`).join('; ');
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await request(`${this.#base}${path}`, {
      method,
      headers,
      body: form ? new URLSearchParams(form).toString() : undefined,
      dispatcher: this.#agent,
    });
    this.#store(res.headers['set-cookie']);
    const text = await res.body.text();
    const body = res.headers['content-type']?.toString().startsWith('application/json') ? JSON.parse(text) : { text };
    return { status: res.statusCode, instance: String(res.headers['x-instance-id'] ?? ''), body };
  }

  #store(setCookie: string | string[] | undefined): void {
    for (const line of typeof setCookie === 'string' ? [setCookie] : (setCookie ?? [])) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))) this.#jar.delete(name);
      else this.#jar.set(name, pair.slice(eq + 1).trim());
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#agent.close();
  }
}

/** What one captcha → login → add to cart → read cart flow saw. */
export interface FlowResult {
  readonly loggedIn: boolean;
  readonly cartOk: boolean;
  /** Instance of each of the four requests, in order. */
  readonly instances: readonly string[];
}

/** The session flow the stack exists for, with a fresh cookie jar: each request lands where round robin sends it. */
export async function loginFlow(base: string, item: string): Promise<FlowResult> {
  await using client = new CookieClient(base);
  const captcha = await client.send('GET', '/captcha');
  const code = String(captcha.body.code ?? '');
  const login = await client.send('POST', '/login', { user: 'alice', password: 'wonderland', captcha: code });
  const add = await client.send('POST', '/cart', { item });
  const cart = await client.send('GET', '/cart');
  const items = (cart.body.items ?? {}) as Record<string, number>;
  return {
    loggedIn: login.status === 200 && login.body.user === 'alice',
    cartOk: add.status === 200 && cart.body.user === 'alice' && items[item] === 1,
    instances: [captcha.instance, login.instance, add.instance, cart.instance],
  };
}

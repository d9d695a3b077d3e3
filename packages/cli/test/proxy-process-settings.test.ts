import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROXY_MALLOC_ENV, proxyMallocEnv } from '../src/proxy-runtime/v8-flags.ts';
import { BIN } from './run-cli.ts';

describe('proxyMallocEnv', () => {
  it('gives the proxy malloc settings the environment lacks', () => {
    expect(proxyMallocEnv({ PATH: '/bin' })).toEqual(PROXY_MALLOC_ENV);
  });

  it('keeps an arena limit the operator set, by name or as a glibc tunable', () => {
    expect(proxyMallocEnv({ MALLOC_ARENA_MAX: '8' })).not.toHaveProperty('MALLOC_ARENA_MAX');
    expect(proxyMallocEnv({ GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4' })).not.toHaveProperty(
      'MALLOC_ARENA_MAX',
    );
    expect(proxyMallocEnv({ GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' })).toHaveProperty('MALLOC_ARENA_MAX');
  });

  it('keeps a trim threshold the operator set, by name or as a glibc tunable, and still adds the arena limit', () => {
    expect(proxyMallocEnv({ MALLOC_TRIM_THRESHOLD_: '1048576' })).toEqual({ MALLOC_ARENA_MAX: '2' });
    expect(proxyMallocEnv({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=0' })).toEqual({ MALLOC_ARENA_MAX: '2' });
  });
});

/** What the kernel says a process was started with: its environment and its command line. */
function startedWith(pid: number): { env: Record<string, string>; argv: string[] } {
  const env: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)) {
    const eq = entry.indexOf('=');
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return { env, argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean) };
}

function childPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** The settings docs/operations.md ("Memory") promises, spelled out: dropping one from v8-flags.ts fails here. */
const FLAGS = [
  '--max-semi-space-size=4',
  '--initial-old-space-size=40',
  '--heap-growing-percent=100',
  '--no-allocation-site-pretenuring',
  '--memory-saver-mode',
  '--min-semi-space-size=4',
];
const MALLOC = { MALLOC_ARENA_MAX: '2', MALLOC_TRIM_THRESHOLD_: '131072' };

/**
 * The real `tiergate proxy`: the processes that serve (`workers: 1`: the launched process itself, after
 * it re-executes; `workers: N`: each worker) run with the V8 flags and malloc settings of v8-flags.ts.
 */
describe('tiergate proxy process settings', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function startProxy(workers: number, env: NodeJS.ProcessEnv = process.env, nodeArgs: string[] = []): Promise<ChildProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'tg-settings-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tiergate.yaml');
    // The upstream is never contacted: no request is sent and health checks are off.
    writeFileSync(
      file,
      `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 0 }]
  admin: { address: 127.0.0.1, port: 0 }
  workers: ${workers}
  access_log: false
  pools:
    app:
      servers: [{ address: "127.0.0.1:9" }]
`,
    );
    const child = spawn(process.execPath, [...nodeArgs, BIN, 'proxy', '-c', file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    const deadline = Date.now() + 20_000;
    while (!/^workers: \d+$/m.test(out)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`tiergate proxy did not start: ${err.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return child;
  }

  const withoutOperatorSettings = (): NodeJS.ProcessEnv => {
    const env = { ...process.env };
    for (const name of Object.keys(PROXY_MALLOC_ENV)) delete env[name];
    delete env.GLIBC_TUNABLES;
    delete env.NODE_OPTIONS;
    return env;
  };

  it('workers: 1 serves from the launched process, re-executed with the V8 flags and malloc settings', async () => {
    const child = await startProxy(1, withoutOperatorSettings());
    const { env, argv } = startedWith(child.pid as number);
    expect(env).toMatchObject(MALLOC);
    expect(argv).toEqual(expect.arrayContaining(FLAGS));
    expect(childPids(child.pid as number)).toEqual([]);
  });

  it("workers: 1 keeps the operator's arena limit", async () => {
    const child = await startProxy(1, { ...withoutOperatorSettings(), MALLOC_ARENA_MAX: '8' });
    const { env, argv } = startedWith(child.pid as number);
    expect(env.MALLOC_ARENA_MAX).toBe('8');
    expect(argv).toEqual(expect.arrayContaining(FLAGS));
  });

  it("workers: 1 keeps the operator's V8 flags and still re-executes for the malloc settings", async () => {
    // --initial-old-space-size is not allowed in NODE_OPTIONS: node's command line is where it goes.
    const env = { ...withoutOperatorSettings(), NODE_OPTIONS: '--max-semi-space-size=8' };
    const child = await startProxy(1, env, ['--initial-old-space-size=48']);
    const started = startedWith(child.pid as number);
    expect(started.env).toMatchObject({ ...MALLOC, NODE_OPTIONS: '--max-semi-space-size=8' });
    expect(started.argv.filter((a) => a.startsWith('--'))).toEqual([
      '--initial-old-space-size=48',
      '--heap-growing-percent=100',
      '--no-allocation-site-pretenuring',
      '--memory-saver-mode',
      '--min-semi-space-size=4',
    ]);
  });

  it('workers: 2 starts each worker with the V8 flags and malloc settings', async () => {
    const child = await startProxy(2, withoutOperatorSettings());
    const workers = childPids(child.pid as number);
    expect(workers).toHaveLength(2);
    for (const pid of workers) {
      const { env, argv } = startedWith(pid);
      expect(env).toMatchObject(MALLOC);
      expect(argv).toEqual(expect.arrayContaining(FLAGS));
    }
  });
});

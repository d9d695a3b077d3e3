import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FlowResult,
  loginFlow,
  type RunningStack,
  type StackConfigFile,
  spawnUp,
  startStack,
  waitGone,
  writeStackConfig,
} from './stack-harness.ts';

// End to end through the REAL `tiergate up`: redis-server, two demo app processes and the proxy as
// child processes, round robin between the apps. The same flow must pass with Redis sessions and
// fail with per-process memory sessions: that is the bug the stack exists to show, and the proof
// that this test can tell the two apart.

const ITERATIONS = 100;

async function runFlows(base: string): Promise<FlowResult[]> {
  const results: FlowResult[] = [];
  for (let i = 0; i < ITERATIONS; i++) results.push(await loginFlow(base, `item-${i}`));
  return results;
}

/** Flows whose login went to another app process than the captcha: the ones that need shared sessions. */
const crossInstance = (results: FlowResult[]) => results.filter((r) => r.instances[0] !== r.instances[1]).length;

describe('tiergate up (Redis sessions)', () => {
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

  it(`${ITERATIONS}/${ITERATIONS} captcha → login → cart flows succeed across both instances`, async () => {
    expect([...stack.pids.keys()].sort()).toEqual(['app-1', 'app-2', 'proxy', 'redis']);
    const results = await runFlows(config.proxyUrl);
    expect(new Set(results.flatMap((r) => r.instances))).toEqual(new Set(['app-1', 'app-2']));
    expect(crossInstance(results)).toBeGreaterThan(ITERATIONS / 2);
    expect(results.filter((r) => r.loggedIn && r.cartOk).length).toBe(ITERATIONS);
  });

  it('SIGINT stops every child by PID, removes the temp dir and exits 0', async () => {
    expect(existsSync(stack.tempDir)).toBe(true);
    stack.process.kill('SIGINT');
    expect(await stack.exited).toBe(0);
    expect(await waitGone(stack.pids.values())).toEqual([]);
    expect(existsSync(stack.tempDir)).toBe(false);
  });
});

describe('tiergate up --store memory (the lost-login bug)', () => {
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

  it('rejects the login in most flows (the captcha lives in the other process)', async () => {
    expect([...stack.pids.keys()].sort()).toEqual(['app-1', 'app-2', 'proxy']);
    expect(stack.stdout()).toMatch(/sessions\s+memory/);
    const results = await runFlows(config.proxyUrl);
    expect(new Set(results.flatMap((r) => r.instances))).toEqual(new Set(['app-1', 'app-2']));
    const rejected = results.filter((r) => !r.loggedIn).length;
    expect(rejected).toBeGreaterThan(ITERATIONS / 2);
    expect(results.filter((r) => r.loggedIn && r.cartOk).length).toBeLessThan(ITERATIONS);
  });

  it('a child that dies stops the whole stack with a message naming it, exit 1', async () => {
    const victim = stack.pids.get('app-1')!;
    process.kill(victim, 'SIGKILL');
    expect(await stack.exited).toBe(1);
    expect(stack.stderr()).toContain(`app-1 (pid ${victim}) exited unexpectedly (SIGKILL); stopping the stack.`);
    expect(await waitGone(stack.pids.values())).toEqual([]);
    expect(existsSync(stack.tempDir)).toBe(false);
  });
});

describe('tiergate up without redis-server', () => {
  it('exits 1 with the install command and no stack trace', async () => {
    await using config = await writeStackConfig();
    const { out, exited } = spawnUp({
      config: config.path,
      env: { ...process.env, TG_REDIS_SERVER: '/nonexistent/bin/redis-server' },
    });
    expect(await exited).toBe(1);
    expect(out.stderr).toContain('redis-server is not installed (looked for /nonexistent/bin/redis-server from TG_REDIS_SERVER)');
    expect(out.stderr).toMatch(/install it: +(sudo )?apt-get install -y redis-server/);
    expect(out.stderr).toContain('[TG_STACK_MISSING_BINARY]');
    expect(out.stderr).not.toMatch(/^\s+at /m);
    expect(out.stdout).toBe('');
  });
});

describe('tiergate up with a port already taken', () => {
  it('exits 1 naming the port before it starts anything', async () => {
    await using config = await writeStackConfig();
    const port = Number(new URL(config.proxyUrl).port);
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const { out, exited } = spawnUp({ config: config.path });
      expect(await exited).toBe(1);
      expect(out.stderr).toContain(`127.0.0.1:${port} (for proxy) is already in use`);
      expect(out.stderr).toContain('[TG_STACK_START_FAILED]');
      expect(out.stdout).toBe('');
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});

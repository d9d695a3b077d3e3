import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const LAUNCHER = fileURLToPath(new URL('../../bin/tiergate.js', import.meta.url));
const CONFIG = fileURLToPath(new URL('../../../../examples/local-stack.yaml', import.meta.url));

describe('tiergate demo-app', () => {
  it('serves with its instance id and exits 0 on SIGTERM', async () => {
    const args = [LAUNCHER, 'demo-app', '--port', '0', '--instance', 'unit-1', '-c', CONFIG, '--store', 'memory'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    try {
      const deadline = Date.now() + 20_000;
      while (!/listening on (\S+)/.test(stdout) && child.exitCode === null && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const url = /listening on (\S+) \(sessions: memory\)/.exec(stdout)?.[1];
      expect(url, `no "listening on" line; stderr: ${stderr}`).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${url}/healthz`);
      expect(res.headers.get('x-instance-id')).toBe('unit-1');
      expect(await res.json()).toEqual({ status: 'ok', instance: 'unit-1' });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stdout).toContain('demo app stopped (SIGTERM)');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('rejects a bad --port as a usage error (exit 2, no stack trace)', async () => {
    const child = spawn(process.execPath, [LAUNCHER, 'demo-app', '--port', 'eighty', '-c', CONFIG], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(stderr).toContain('--port: not a TCP port: eighty [TG_CLI_USAGE]');
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});

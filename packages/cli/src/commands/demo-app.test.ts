import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
      // Without --demo: the captcha is an image even for a JSON client; the listener is loopback, so not Secure.
      const captcha = await fetch(`${url}/captcha`, { headers: { accept: 'application/json' } });
      expect(captcha.headers.get('content-type')).toBe('image/svg+xml');
      expect(captcha.headers.get('set-cookie')).not.toContain('Secure');
      await captcha.arrayBuffer();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stdout).toContain('demo app stopped (SIGTERM)');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('--demo answers the captcha in JSON; the cookie is Secure when the file’s listener is not loopback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-demo-app-'));
    const file = join(dir, 'tiergate.yaml');
    writeFileSync(
      file,
      readFileSync(CONFIG, 'utf8').replace('- address: 127.0.0.1\n      port: 8080', '- address: 0.0.0.0\n      port: 8080'),
    );
    const args = [LAUNCHER, 'demo-app', '--port', '0', '-c', file, '--store', 'memory', '--demo'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    try {
      const deadline = Date.now() + 20_000;
      while (!/listening on (\S+)/.test(stdout) && child.exitCode === null && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const url = /listening on (\S+) \(sessions: memory, demo mode/.exec(stdout)?.[1];
      expect(url, stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const captcha = await fetch(`${url}/captcha`, { headers: { accept: 'application/json' } });
      expect(await captcha.json()).toEqual({ code: expect.stringMatching(/^[A-Z2-9]{6}$/) });
      expect(captcha.headers.get('set-cookie')).toContain('; Secure');
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
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

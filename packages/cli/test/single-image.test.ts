import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ReloadReadOutput, readReloadInChild, SERVE_ENV, takePlan } from '../src/proxy-runtime/single-image.ts';
import { runCli } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'tg-single-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const proxyFile = (port: number, server: string) =>
  `version: 1\nproxy:\n  listeners: [{ port: ${port} }]\n  drain_delay: 3s\n  pools:\n    app:\n      servers: [{ address: "${server}" }]\n`;

/** What a `workers: 1` proxy's serving image reads its file with at a reload: `tiergate proxy reload-read`. */
describe('tiergate proxy reload-read', () => {
  it('prints the checked proxy section, defaults filled in, and the drain delay', async () => {
    const r = await runCli(['proxy', 'reload-read', '-c', file('good.yaml', proxyFile(8080, '127.0.0.1:8081'))]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as ReloadReadOutput;
    expect(out).toMatchObject({
      drainDelayMs: 3000,
      section: { workers: 1, pools: { app: { servers: [{ address: '127.0.0.1:8081' }] } } },
    });
  });

  it('prints a config error as its code and message, exit 1', async () => {
    const bad = file('bad.yaml', proxyFile(8080, 'not an address'));
    const r = await runCli(['proxy', 'reload-read', '-c', bad]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      error: {
        code: 'TG_CONFIG_INVALID',
        message: expect.stringContaining(`${bad}:7:28: proxy.pools.app.servers[0].address: expected host:port`),
      },
    });
  });
});

describe('readReloadInChild', () => {
  it('resolves with the section a file gives, and rejects a change of a restart-only key or a bad file with its code', async () => {
    const good = file('running.yaml', proxyFile(8080, '127.0.0.1:8081'));
    const running = (JSON.parse((await runCli(['proxy', 'reload-read', '-c', good])).stdout) as { section: never }).section;
    const next = await readReloadInChild(file('next.yaml', proxyFile(8080, '127.0.0.1:8082')), running);
    expect(next.section.pools.app?.servers[0]?.address).toBe('127.0.0.1:8082');
    const moved = file('moved.yaml', proxyFile(8090, '127.0.0.1:8081'));
    await expect(readReloadInChild(moved, running)).rejects.toMatchObject({
      code: 'TG_PROXY_RELOAD_REJECTED',
      message: `${moved}: proxy.listeners changed; restart the proxy to apply it`,
    });
    await expect(readReloadInChild(join(dir, 'missing.yaml'), running)).rejects.toMatchObject({ code: 'TG_CONFIG_UNREADABLE' });
  });
});

describe('takePlan', () => {
  it('reads and removes only a plan file tiergate wrote, and takes the variable out of the environment', () => {
    const planDir = mkdtempSync(join(tmpdir(), 'tiergate-proxy-'));
    const plan = join(planDir, 'plan.json');
    writeFileSync(plan, JSON.stringify({ file: 'x.yaml', drainDelayMs: 5 }));
    process.env[SERVE_ENV] = plan;
    expect(takePlan()).toEqual({ file: 'x.yaml', drainDelayMs: 5 });
    expect([existsSync(plan), existsSync(planDir), process.env[SERVE_ENV]]).toEqual([false, false, undefined]);

    const other = file('plan.json', '{}');
    process.env[SERVE_ENV] = other;
    expect(() => takePlan()).toThrow(expect.objectContaining({ code: 'TG_CLI_USAGE' }));
    expect([existsSync(other), process.env[SERVE_ENV]]).toEqual([true, undefined]);
  });
});

import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'tg-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const examples = new URL('../../../examples/', import.meta.url).pathname;

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const good = file(
  'good.yaml',
  'version: 1\nproxy:\n  listeners: [{ port: 8080 }]\n  pools:\n    app:\n      servers: [{ address: "127.0.0.1:8081" }]\n',
);
const bad = file(
  'bad.yaml',
  'version: 1\nvirtual_services:\n  - address: 10.0.0.1\n    port: 80\n    scheduler: wrrr\n    real_servers:\n      - address: 10.0.0.2\n        weight: -1\n',
);

describe('tiergate validate', () => {
  it('accepts a valid file with exit 0', async () => {
    const r = await runCli(['validate', good]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${good}: ok\n`);
    expect(r.code).toBe(0);
  });

  it('accepts every example in examples/', async () => {
    const files = readdirSync(examples)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join(examples, f));
    expect(files.length).toBeGreaterThanOrEqual(2);
    const r = await runCli(['validate', ...files]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('rejects an invalid file with exit 1 and prints every problem with file:line:column and path', async () => {
    const r = await runCli(['validate', good, bad]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${good}: ok`);
    expect(r.stderr).toContain(`${bad}: invalid (TG_CONFIG_INVALID, 2 problems)`);
    expect(r.stderr).toContain(`${bad}:5:16: virtual_services[0].scheduler: "wrrr" is not allowed`);
    expect(r.stderr).toContain(`${bad}:8:17: virtual_services[0].real_servers[0].weight:`);
  });

  it('reports a missing file as unreadable with exit 1', async () => {
    const r = await runCli(['validate', join(dir, 'nope.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nope\.yaml: invalid \(TG_CONFIG_UNREADABLE/);
  });

  it('prints JSON with --json', async () => {
    const r = await runCli(['validate', '--json', bad]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out[0].issues.map((i: { path: string }) => i.path)).toEqual([
      'virtual_services[0].scheduler',
      'virtual_services[0].real_servers[0].weight',
    ]);
  });
});

describe('tiergate usage', () => {
  it('exits 2 on an unknown command or a missing argument', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2);
    const r = await runCli(['validate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("missing required argument 'files'");
  });

  it('prints help and version with exit 0', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('validate');
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('runs under the system node (Node 20 on these machines) by re-executing itself with Node 24', async () => {
    const r = await runCli(['validate', good], { node: '/usr/bin/node' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${good}: ok\n`);
    expect(r.code).toBe(0);
  });
});

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

  it('accepts every example in examples/ (the deployable ones with a warning on their CHANGE_ME secret)', async () => {
    const files = readdirSync(examples)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join(examples, f));
    expect(files.length).toBeGreaterThanOrEqual(2);
    const r = await runCli(['validate', ...files]);
    expect(r.code).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l !== '' && !/: warning: is a placeholder/.test(l))).toEqual([]);
  });

  it('--strict accepts the loopback and L4-only examples and refuses the ones with a CHANGE_ME secret', async () => {
    const at = (name: string) => join(examples, name);
    const clean = await runCli(['validate', '--strict', at('local-stack.yaml'), at('nat-and-tun.yaml')]);
    expect(clean.stderr).toBe('');
    expect(clean.code).toBe(0);
    const placeholders = await runCli(['validate', '--strict', at('classic-lvs-dr.yaml'), at('hash-and-sticky.yaml')]);
    expect(placeholders.code).toBe(1);
    expect(placeholders.stderr).toContain(`${at('classic-lvs-dr.yaml')}: refused by --strict (1 warning)`);
    expect(placeholders.stderr).toMatch(/classic-lvs-dr\.yaml:\d+:\d+: sessions\.secrets\[0\]: warning: is a placeholder/);
    expect(placeholders.stderr).toContain(`${at('hash-and-sticky.yaml')}: refused by --strict (1 warning)`);
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

// Valid, with two warnings: a trust range holding the VIP and a proxy node (DR), and a Secure cookie behind plain HTTP.
const warned = file(
  'warned.yaml',
  `version: 1
virtual_services:
  - { address: 192.168.10.100, port: 80, forwarding: dr, real_servers: [{ address: 192.168.10.11 }] }
proxy:
  listeners: [{ port: 80 }]
  trusted_proxies: [192.168.10.0/24]
  pools: { app: { servers: [{ address: "192.168.10.21:8080" }] } }
sessions:
  cookie: { secure: true }
  secrets: [${'k'.repeat(8)}-random-${'q'.repeat(8)}]
`,
);

describe('tiergate validate: warnings and --strict', () => {
  it('prints each warning as file:line:column: path: warning: message and exits 0', async () => {
    const r = await runCli(['validate', warned]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${warned}: ok (2 warnings)\n`);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/: proxy\.trusted_proxies\[0\]: warning: 192\.168\.10\.0\/24 contains the VIP 192\.168\.10\.100/);
    expect(lines[0]?.startsWith(`  ${warned}:6:21: `)).toBe(true);
    expect(lines[1]).toMatch(/: sessions\.cookie\.secure: warning: proxy\.listeners\[0\] \(0\.0\.0\.0:80\) is plain HTTP/);
    expect(lines[1]?.startsWith(`  ${warned}:9:21: `)).toBe(true);
  });

  it('--strict refuses a file with warnings (exit 1) and still accepts a clean one', async () => {
    const r = await runCli(['validate', '--strict', good, warned]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`${good}: ok\n`);
    expect(r.stderr).toContain(`${warned}: refused by --strict (2 warnings)\n`);
    expect(r.stderr).toContain(`${warned}:6:21: proxy.trusted_proxies[0]: warning:`);
    const clean = await runCli(['validate', '--strict', good]);
    expect(clean.code).toBe(0);
    expect(clean.stderr).toBe('');
  });

  it('--json lists the warnings; with --strict the file is not ok', async () => {
    const plain = JSON.parse((await runCli(['validate', '--json', warned])).stdout);
    expect(plain[0]).toMatchObject({ ok: true, issues: [] });
    expect(plain[0].warnings.map((w: { path: string; line: number }) => [w.path, w.line])).toEqual([
      ['proxy.trusted_proxies[0]', 6],
      ['sessions.cookie.secure', 9],
    ]);
    const strict = await runCli(['validate', '--json', '--strict', warned]);
    expect(strict.code).toBe(1);
    expect(JSON.parse(strict.stdout)[0]).toMatchObject({ ok: false, issues: [] });
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

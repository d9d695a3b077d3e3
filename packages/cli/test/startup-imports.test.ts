import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.ts';

/**
 * Which packages a command loads before it does its work. Every module costs startup time, and under QEMU's software
 * CPU (the director's real-kernel tests, small VMs) loading every package made `tiergate --version` take 28 s: help and
 * --version must load no package, `validate` only @tiergate/config and its parsers (program.ts explains how). The
 * assertion is on module names, not on timings.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const HOOK = pathToFileURL(fileURLToPath(new URL('./record-loaded-modules.ts', import.meta.url))).href;
const example = (name: string) => join(ROOT, 'examples', name);
const dir = mkdtempSync(join(tmpdir(), 'tiergate-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The packages a module URL belongs to: an npm package name, or `@tiergate/<dir>` for a workspace package's file. */
function packageOf(url: string): string | undefined {
  if (!url.startsWith('file:')) return undefined; // node:* builtins
  const path = fileURLToPath(url);
  const inModules = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (inModules) return inModules[1];
  const workspace = /^packages\/([^/]+)\//.exec(path.slice(ROOT.length));
  return workspace ? `@tiergate/${workspace[1]}` : path.slice(ROOT.length);
}

let runs = 0;
/** Runs the real launcher with the recording hook; returns the exit code, output and the sorted set of packages loaded. */
async function loadedBy(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  const file = join(dir, `loaded-${runs++}.txt`);
  const env = { ...process.env, ...extraEnv, NODE_OPTIONS: `--import=${HOOK}`, TIERGATE_LOADED_MODULES: file };
  const r = await runCli(args, { env });
  const urls = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const packages = [...new Set(urls.map(packageOf).filter((p) => p !== undefined))].sort();
  return { ...r, urls, packages };
}

/** The launcher, the program and the command definitions (packages/cli) and commander: no other package. */
const HELP_ONLY = ['@tiergate/cli', 'commander'];

describe('what a tiergate command loads at startup', () => {
  const helpCalls = [
    ['--version'],
    ['-V'],
    ['--help'],
    ['director', '--help'],
    ['director', 'run', '--help'],
    ['realserver', '--help'],
    ['proxy', '--help'],
    ['demo-app', '--help'],
    ['up', '--help'],
    ['validate', '--help'],
    ['warm-cache', '--help'],
  ];
  it.each(helpCalls.map((args) => [args.join(' '), args] as const))('`tiergate %s` loads commander only', async (_, args) => {
    const r = await loadedBy([...args]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toBe('');
    expect(r.packages).toEqual(HELP_ONLY);
  });

  it('`tiergate validate FILE` loads @tiergate/config and its parsers (zod, yaml), no network, telemetry, metrics or kernel code', async () => {
    const r = await loadedBy(['validate', example('classic-lvs-dr.yaml'), example('nat-and-tun.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/classic-lvs-dr\.yaml: ok/);
    // Not undici, @opentelemetry/*, prom-client, pino, koffi, ioredis, nor the proxy, director or telemetry packages.
    expect(r.packages).toEqual(['@tiergate/cli', '@tiergate/config', '@tiergate/errors', 'commander', 'yaml', 'zod']);
  });

  it('`tiergate proxy reload-read FILE` (the child a `workers: 1` proxy reads its file with) loads the config package and nothing of the proxy', async () => {
    const r = await loadedBy(['proxy', 'reload-read', '-c', example('classic-lvs-dr.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ section: { monitor_uri: expect.any(String) } });
    expect(r.packages).toEqual(['@tiergate/cli', '@tiergate/config', '@tiergate/errors', 'commander', 'yaml', 'zod']);
  });

  it('`tiergate validate` of an invalid file loads no more than of a valid one', async () => {
    const r = await loadedBy(['validate', join(ROOT, 'package.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/package\.json: invalid \(TG_CONFIG_/);
    expect(r.packages).toEqual(['@tiergate/cli', '@tiergate/config', '@tiergate/errors', 'commander', 'yaml', 'zod']);
  });

  it('`tiergate director apply --dry-run --against-empty` loads neither the proxy, undici, an OpenTelemetry SDK nor koffi', async () => {
    // It opens no netlink socket, so koffi (a native addon, loaded with the first socket) stays out too
    // (director-dry-run.test.ts checks its output).
    const r = await loadedBy(['director', 'apply', '--dry-run', '--against-empty', '-c', example('nat-and-tun.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.packages).toContain('@tiergate/director');
    const unwanted = r.packages.filter((p) => ['@tiergate/proxy', 'undici', 'koffi'].includes(p) || /^@opentelemetry\/sdk-/.test(p));
    expect(unwanted).toEqual([]);
  });

  it('`tiergate director wait` loads the config package and the status reading: not the daemon, metrics, logging, telemetry or koffi', async () => {
    // It runs on the director hosts between two restarts of a rollout (the proxy role's handler), emulated in the
    // stack test: an unknown server ends it before any daemon is asked, after everything it loads is loaded.
    const r = await loadedBy(['director', 'wait', '-c', example('classic-lvs-dr.yaml'), '--name', 'lb1', '--server', '192.0.2.99']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TG_DIRECTOR_UNKNOWN_SERVER');
    expect(r.packages).toEqual([
      '@tiergate/cli',
      '@tiergate/config',
      '@tiergate/director',
      '@tiergate/errors',
      '@tiergate/ipvs',
      'commander',
      'yaml',
      'zod',
    ]);
    // Of @tiergate/director, the status reading and what it needs: not the reconciler, health checks or admin server.
    expect(r.urls.filter((u) => u.includes('/packages/director/')).map((u) => u.slice(u.lastIndexOf('/') + 1))).toEqual([
      'routed.ts',
      'desired.ts',
    ]);
  });

  it('`tiergate warm-cache` loads every module those commands load, into the compile cache it names', async () => {
    const cache = join(dir, 'compile-cache');
    const warm = await loadedBy(['warm-cache'], { NODE_COMPILE_CACHE: cache });
    expect(warm.code, warm.stderr).toBe(0);
    expect(warm.stdout).toMatch(new RegExp(`^compile cache warmed: ${cache}/\\S+\n$`));
    expect(readdirSync(cache, { recursive: true }).length).toBeGreaterThan(0);
    for (const p of ['@tiergate/director', '@tiergate/proxy', '@tiergate/demo-app', '@tiergate/session', 'undici', 'prom-client', 'pino'])
      expect(warm.packages).toContain(p);
    // What commands that run here load (the proxy's status finds no proxy on port 1 of loopback, after loading its code).
    for (const args of [
      ['validate', example('classic-lvs-dr.yaml')],
      ['director', 'wait', '-c', example('classic-lvs-dr.yaml'), '--name', 'lb1', '--server', '192.0.2.99'],
      ['director', 'apply', '--dry-run', '--against-empty', '-c', example('nat-and-tun.yaml')],
      ['proxy', 'status', '-c', example('local-stack.yaml'), '--admin', 'http://127.0.0.1:1'],
    ]) {
      const r = await loadedBy(args);
      expect(r.urls.filter((url) => !warm.urls.includes(url))).toEqual([]);
    }
  });
});

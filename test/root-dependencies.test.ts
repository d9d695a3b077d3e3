import { readdirSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
/** The directories whose code belongs to the root package (no package.json of their own). */
const DIRS = ['test', 'loadtest'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(c|m)?[jt]s$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

/**
 * k6's own modules (`k6`, `k6/http`, …): a k6 script imports them from the k6 runtime, or from the Node runner's
 * resolve hook (loadtest/k6-runner), never from node_modules (their types come from the declared `@types/k6`).
 */
const K6_MODULE = /^k6(\/|$)/;

/** The package a bare specifier names (`@scope/name` or `name`), or undefined for a relative path, a builtin or k6's. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/') || isBuiltin(specifier) || K6_MODULE.test(specifier)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

describe('the root package.json', () => {
  it('declares every package that test/ and loadtest/ import (not found only through the workspaces’ hoisting)', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    const declared = new Set([...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.devDependencies ?? {})]);
    const missing = new Set<string>();
    let seen = 0;
    for (const file of DIRS.flatMap((d) => sources(join(ROOT, d)))) {
      const text = readFileSync(file, 'utf8');
      // Static imports and re-exports, side-effect imports, dynamic import() and require() of a quoted specifier.
      for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"]([^'"]+)['"]/g)) {
        const pkg = packageOf(m[1]!);
        if (pkg === undefined) continue;
        seen++;
        if (!declared.has(pkg)) missing.add(`${pkg} (${relative(ROOT, file)})`);
      }
    }
    expect(seen).toBeGreaterThan(20); // the scan finds the imports at all
    expect([...missing].sort()).toEqual([]);
  });

  it('pins what it shares with a workspace package to the same version', () => {
    const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies as Record<string, string>;
    const mismatched: string[] = [];
    for (const dir of readdirSync(join(ROOT, 'packages'))) {
      const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', dir, 'package.json'), 'utf8'));
      for (const [name, range] of Object.entries({ ...manifest.dependencies, ...manifest.devDependencies } as Record<string, string>)) {
        if (name.startsWith('@tiergate/') || root[name] === undefined) continue;
        if (root[name] !== range.replace(/^\^/, '')) mismatched.push(`${name}: root ${root[name]}, packages/${dir} ${range}`);
      }
    }
    expect(mismatched).toEqual([]);
  });
});

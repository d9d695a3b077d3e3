/**
 * Enforces the one-way import graph of docs/architecture.md: each package may import only the
 * @tiergate packages listed for it below (and must declare them in its package.json), never a deep
 * path into another package (a subpath the package's `exports` names is an entry point of its own, not a deep path), and never a relative path that leaves its own folder.
 * Written by hand (instead of dependency-cruiser) because the rule is this small table and a
 * 40-line scan keeps the check dependency-free and fast.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

export const ALLOWED: Record<string, readonly string[]> = {
  errors: [],
  config: ['errors'],
  balancer: ['errors', 'config'],
  health: ['errors', 'config'],
  ipvs: ['errors', 'config'],
  director: ['errors', 'config', 'health', 'ipvs'],
  proxy: ['errors', 'config', 'balancer', 'health'],
  session: ['errors', 'config'],
  telemetry: ['errors', 'config'],
  'demo-app': ['errors', 'config', 'session'],
  cli: ['errors', 'config', 'balancer', 'health', 'ipvs', 'director', 'proxy', 'session', 'telemetry', 'demo-app'],
  testkit: ['*'],
};

const root = resolve(import.meta.dirname, '..');
const problems: string[] = [];

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (/\.(ts|mts|js|mjs)$/.test(name)) yield p;
  }
}

/** The entry points a workspace package's package.json `exports` names (`.`, `./routed`, …). */
function exportsOf(name: string): string[] {
  try {
    const exp = JSON.parse(readFileSync(join(root, 'packages', name, 'package.json'), 'utf8')).exports;
    return typeof exp === 'object' && exp !== null ? Object.keys(exp) : ['.'];
  } catch {
    return [];
  }
}

const importRe = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

for (const pkg of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', pkg);
  const allowed = ALLOWED[pkg];
  if (!allowed) {
    problems.push(`packages/${pkg}: not in the import table of scripts/check-imports.ts`);
    continue;
  }
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const declared = { ...manifest.dependencies, ...manifest.devDependencies };
  for (const sub of ['src', 'bin', 'test']) {
    let exists = false;
    try {
      exists = statSync(join(dir, sub)).isDirectory();
    } catch {}
    if (!exists) continue;
    const productionCode = sub !== 'test';
    for (const file of tsFiles(join(dir, sub))) {
      const text = readFileSync(file, 'utf8');
      const rel = relative(root, file);
      for (const m of text.matchAll(importRe)) {
        const spec = (m[1] ?? m[2]) as string;
        if (spec.startsWith('@tiergate/')) {
          const [, name, ...deep] = spec.split('/');
          if (deep.length > 0 && !exportsOf(name as string).includes(`./${deep.join('/')}`))
            problems.push(`${rel}: deep import '${spec}' (use the package's index, or an entry its exports name)`);
          if (name === pkg) problems.push(`${rel}: imports its own package by name`);
          else if (productionCode && !allowed.includes('*') && !allowed.includes(name as string))
            problems.push(`${rel}: '${pkg}' may not import '@tiergate/${name}' (allowed: ${allowed.join(', ') || 'none'})`);
          else if (productionCode && !(`@tiergate/${name}` in declared))
            problems.push(`${rel}: imports '@tiergate/${name}' without declaring it in package.json`);
        } else if (spec.startsWith('.')) {
          const target = resolve(file, '..', spec);
          if (!target.startsWith(`${dir}/`)) problems.push(`${rel}: relative import '${spec}' leaves packages/${pkg}`);
        }
      }
    }
  }
}

if (problems.length > 0) {
  console.error(`import graph: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log('import graph: ok');

/**
 * The Debian packages the tests need (scripts/system-packages.txt, the one list) and what is missing of them.
 * Read by `npm test` (scripts/test.ts) before anything runs, and by test/system-packages.test.ts; .ci/run reads
 * the same file with sed/awk (it runs before `npm ci`, on Node 20, so it cannot import this).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One line of the list: a package and the commands from it that tiergate runs. */
export interface SystemPackage {
  readonly name: string;
  readonly commands: readonly string[];
  readonly line: number;
}

export const LIST_FILE = join(import.meta.dirname, 'system-packages.txt');

/** Parses the list: `package command… # why`; blank and comment lines are skipped. */
export function parseSystemPackages(text: string): SystemPackage[] {
  const out: SystemPackage[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    const [name, ...commands] = fields;
    if (name) out.push({ name, commands, line: i + 1 });
  });
  return out;
}

export function readSystemPackages(file = LIST_FILE): SystemPackage[] {
  return parseSystemPackages(readFileSync(file, 'utf8'));
}

/**
 * The packages of `names` that dpkg does not report as installed, or undefined when this is not a dpkg system.
 * One dpkg-query for all (a few ms): unknown names print nothing on stdout and count as missing.
 */
export function missingPackages(names: readonly string[]): string[] | undefined {
  if (!existsSync('/usr/bin/dpkg-query')) return undefined;
  // dpkg-query's own ${field} syntax, not a template string.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript's
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package}\t${db:Status-Status}\n', ...names], { encoding: 'utf8' });
  const installed = new Set(
    r.stdout
      .split('\n')
      .map((l) => l.split('\t'))
      .filter(([, status]) => status === 'installed')
      .map(([name]) => name),
  );
  return names.filter((n) => !installed.has(n));
}

/** The one command that installs `names` (what `npm test` runs as root, and prints otherwise). */
export function installCommand(names: readonly string[], root: boolean): string {
  return `${root ? '' : 'sudo '}apt-get install -y --no-install-recommends ${names.join(' ')}`;
}

import { type ConfigIssue, formatIssue, formatWarning, loadConfigFileWithWarnings } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import type { Command } from 'commander';

interface Result {
  file: string;
  /** Valid, and (with --strict) without warnings. */
  ok: boolean;
  code?: string;
  issues: ConfigIssue[];
  /** Probable mistakes in a valid file (docs/config-reference.md, "Warnings"). */
  warnings: readonly ConfigIssue[];
}

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/**
 * `tiergate validate [--strict] FILE...`: exit 0 when every file is valid, 1 with every problem printed otherwise.
 * Warnings (valid settings that are probably mistakes: placeholder secrets, Secure cookies behind plain HTTP, trust
 * ranges that hold clients) are printed as `file:line:column: path: warning: message` and keep exit 0, unless
 * `--strict` (what infra/ renders with), which refuses a file with any warning.
 */
export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check tiergate.yaml files against the schema and the cross-field rules; nothing is applied')
    .argument('<files...>', 'configuration files')
    .option('--json', 'print the result as JSON')
    .option('--strict', 'refuse a file with warnings (exit 1), as a deployment should')
    .action(async (files: string[], opts: { json?: boolean; strict?: boolean }) => {
      const results: Result[] = [];
      for (const file of files) {
        try {
          const { warnings } = await loadConfigFileWithWarnings(file);
          results.push({ file, ok: !(opts.strict && warnings.length > 0), issues: [], warnings });
        } catch (err) {
          if (!isTgError(err)) throw err;
          const issues = (err.details as { issues?: ConfigIssue[] } | undefined)?.issues ?? [];
          const fallback = { file, line: 0, column: 0, path: '', message: err.message };
          results.push({ file, ok: false, code: err.code, issues: issues.length ? issues : [fallback], warnings: [] });
        }
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      else for (const r of results) print(r);
      if (results.some((r) => !r.ok)) process.exitCode = 1;
    });
}

function print(r: Result): void {
  if (r.code !== undefined) {
    process.stderr.write(`${r.file}: invalid (${r.code}, ${count(r.issues.length, 'problem')})\n`);
    for (const i of r.issues) process.stderr.write(`  ${i.line ? formatIssue(i) : i.message}\n`);
    return;
  }
  if (r.warnings.length === 0) process.stdout.write(`${r.file}: ok\n`);
  else if (r.ok) process.stdout.write(`${r.file}: ok (${count(r.warnings.length, 'warning')})\n`);
  else process.stderr.write(`${r.file}: refused by --strict (${count(r.warnings.length, 'warning')})\n`);
  for (const w of r.warnings) process.stderr.write(`  ${formatWarning(w)}\n`);
}

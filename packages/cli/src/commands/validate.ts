import { type ConfigIssue, formatIssue, loadConfigFile } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import type { Command } from 'commander';

/** `tiergate validate FILE...`: exit 0 when every file is valid, 1 with every problem printed otherwise. */
export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check tiergate.yaml files against the schema and the cross-field rules; nothing is applied')
    .argument('<files...>', 'configuration files')
    .option('--json', 'print the result as JSON')
    .action(async (files: string[], opts: { json?: boolean }) => {
      const results: { file: string; ok: boolean; code?: string; issues: ConfigIssue[] }[] = [];
      for (const file of files) {
        try {
          await loadConfigFile(file);
          results.push({ file, ok: true, issues: [] });
        } catch (err) {
          if (!isTgError(err)) throw err;
          const issues = (err.details as { issues?: ConfigIssue[] } | undefined)?.issues ?? [];
          const fallback = { file, line: 0, column: 0, path: '', message: err.message };
          results.push({ file, ok: false, code: err.code, issues: issues.length ? issues : [fallback] });
        }
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      else
        for (const r of results) {
          if (r.ok) process.stdout.write(`${r.file}: ok\n`);
          else {
            process.stderr.write(`${r.file}: invalid (${r.code}, ${r.issues.length} problem${r.issues.length === 1 ? '' : 's'})\n`);
            for (const i of r.issues) process.stderr.write(`  ${i.line ? formatIssue(i) : i.message}\n`);
          }
        }
      if (results.some((r) => !r.ok)) process.exitCode = 1;
    });
}

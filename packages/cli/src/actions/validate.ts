// What `tiergate validate` does; its options and help are in commands/validate.ts, which imports this module when it runs.
import { type ConfigIssue, formatIssue, formatWarning, loadConfigFileWithWarnings } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';

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

export interface ValidateOpts {
  json?: boolean;
  strict?: boolean;
}

/** `tiergate validate` (commands/validate.ts): loads each file, prints every problem; exit 1 when one is refused. */
export async function validateCommand(files: string[], opts: ValidateOpts): Promise<void> {
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

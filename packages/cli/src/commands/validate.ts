import type { Command } from 'commander';
import type { ValidateOpts } from '../actions/validate.ts';

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
    .action(async (files: string[], opts: ValidateOpts) => (await import('../actions/validate.ts')).validateCommand(files, opts));
}

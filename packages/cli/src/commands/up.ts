import { type Command, Option } from 'commander';
import { DEFAULT_STACK_CONFIG } from '../local-stack/default-config.ts';
import type { StackStore } from '../local-stack/stack-plan.ts';

/**
 * `tiergate up [--config FILE] [--store redis|memory]`: the whole stack on loopback (redis-server,
 * the demo apps of the default pool, the proxy) until Ctrl-C. `npm start` runs it with the
 * quick-start file; `--store memory` runs the same stack with per-process sessions to show the bug.
 * The stack's code (and with it @tiergate/proxy's route table) is loaded when the command runs, not to print help.
 */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run the local stack on loopback: redis-server, one demo app per pool server, the proxy (Ctrl-C stops it)')
    .option('-c, --config <file>', 'tiergate.yaml', DEFAULT_STACK_CONFIG)
    .addOption(
      new Option('--store <kind>', 'override sessions.store (memory: per-process sessions, reproduces lost logins)').choices([
        'redis',
        'memory',
      ]),
    )
    .action(async (opts: { config: string; store?: StackStore }) => {
      const { runLocalStack } = await import('../local-stack/run-local-stack.ts');
      process.exitCode = await runLocalStack(opts);
    });
}

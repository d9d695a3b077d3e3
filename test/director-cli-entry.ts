// The `tiergate director|realserver` commands as a standalone program for the guest tests, built exactly as
// packages/cli/src/main.ts builds `tiergate` (same exit codes), until program.ts registers them.
import { isTgError } from '@tiergate/errors';
import { Command, CommanderError } from 'commander';
import { registerDirector } from '../packages/cli/src/commands/director.ts';
import { registerRealserver } from '../packages/cli/src/commands/realserver.ts';

const program = new Command('tiergate').exitOverride();
registerDirector(program);
registerRealserver(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? 0 : 2;
  else if (isTgError(err)) {
    process.stderr.write(`tiergate: ${err.message} [${err.code}]\n`);
    if (err.details) process.stderr.write(`${JSON.stringify(err.details)}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`tiergate: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

import { isTgError } from '@tiergate/errors';
import { CommanderError } from 'commander';
import { buildProgram } from './program.ts';

/**
 * Exit codes: 0 success; 1 the command ran and failed (invalid config, kernel error, …);
 * 2 usage error (unknown command or option, missing argument).
 */
try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end through exitOverride too, with exitCode 0.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (isTgError(err)) {
    process.stderr.write(`tiergate: ${err.message} [${err.code}]\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`tiergate: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

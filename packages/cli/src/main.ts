import { CommanderError } from 'commander';
import { reportCommandError } from './command-error.ts';
import { buildProgram } from './program.ts';

/**
 * Exit codes: 0 success; 1 the command ran and failed (invalid config, kernel error, …);
 * 2 usage error (unknown command or option, missing argument).
 */
try {
  await (await buildProgram(process.argv)).parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end through exitOverride too, with exitCode 0.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    // A TgError's details (e.g. which IPVS ops an apply completed before failing) too.
    await reportCommandError(err);
  }
}

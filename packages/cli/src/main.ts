import { CommanderError } from 'commander';
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
  } else if ((await import('@tiergate/errors')).isTgError(err)) {
    // Imported here: a command that succeeds (`tiergate --version`) loads nothing it does not use.
    process.stderr.write(`tiergate: ${err.message} [${err.code}]\n`);
    // Config errors list their issues in the message; other details (e.g. which IPVS ops an apply
    // completed before failing) are printed as one JSON line for the operator and for scripts.
    if (err.details !== undefined && !err.code.startsWith('TG_CONFIG_')) process.stderr.write(`${JSON.stringify(err.details)}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`tiergate: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

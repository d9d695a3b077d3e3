/**
 * How a `tiergate` command that failed ends (main.ts, and a `workers: 1` proxy's serving image, which runs without
 * the CLI): a TgError's message and code on stderr, with its details as one JSON line for the operator and for
 * scripts (config errors list their issues in the message already), anything else with its stack; the exit code set.
 */
export async function reportCommandError(err: unknown): Promise<void> {
  // Imported here: a command that succeeds (`tiergate --version`) loads nothing it does not use.
  const { isTgError } = await import('@tiergate/errors');
  if (isTgError(err)) {
    process.stderr.write(`tiergate: ${err.message} [${err.code}]\n`);
    if (err.details !== undefined && !err.code.startsWith('TG_CONFIG_')) process.stderr.write(`${JSON.stringify(err.details)}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`tiergate: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

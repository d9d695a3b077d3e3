// What `tiergate proxy reload-read` does (commands/proxy.ts): apart from actions/proxy.ts, so that the child a
// `workers: 1` proxy runs at each reload loads the config package and nothing of the proxy.
import { isTgError, TgError } from '@tiergate/errors';
import { readReloadConfig } from '../proxy-runtime/proxy-file.ts';
import type { ReloadReadOutput } from '../proxy-runtime/single-image.ts';

/**
 * `tiergate proxy reload-read -c FILE` (hidden; proxy-runtime/single-image.ts): what a reload of a `workers: 1`
 * proxy would apply, read and checked here so that the serving process never loads the schema: one JSON line on
 * stdout, the proxy section and drain delay or the error (exit 1).
 */
export async function reloadReadCommand(opts: { config?: string }): Promise<void> {
  let output: ReloadReadOutput;
  try {
    if (!opts.config) throw new TgError('TG_CLI_USAGE', 'missing -c, --config <file>');
    output = await readReloadConfig(opts.config);
  } catch (err) {
    output = {
      error: isTgError(err)
        ? { code: err.code, message: err.message }
        : { code: 'TG_CONFIG_UNREADABLE', message: String((err as Error)?.message ?? err) },
    };
    process.exitCode = 1;
  }
  process.stdout.write(`${JSON.stringify(output)}\n`);
}

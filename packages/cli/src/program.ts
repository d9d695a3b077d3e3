import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerDemoApp } from './commands/demo-app.ts';
import { registerProxy } from './commands/proxy.ts';
import { registerUp } from './commands/up.ts';
import { registerValidate } from './commands/validate.ts';

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Builds the `tiergate` command tree (the composition root: every package meets here). */
export function buildProgram(): Command {
  const program = new Command('tiergate')
    .description('tiergate: a layered L4 (IPVS director) + L7 (proxy) gateway for Linux, driven by one tiergate.yaml')
    .version(manifest.version, '-V, --version')
    .showHelpAfterError('(run tiergate --help for usage)')
    .exitOverride();
  registerValidate(program);
  registerProxy(program);
  registerUp(program);
  registerDemoApp(program);
  return program;
}

import { readFileSync } from 'node:fs';
import { Command } from 'commander';

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

type Register = (program: Command) => void;

/**
 * Every top-level command and the module that defines it. Modules are imported only when needed:
 * `tiergate validate` should not load undici, ioredis and koffi, and under QEMU's software CPU (the
 * director's real-kernel tests) loading every package costs seconds per command.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  validate: async () => (await import('./commands/validate.ts')).registerValidate,
  proxy: async () => (await import('./commands/proxy.ts')).registerProxy,
  director: async () => (await import('./commands/director.ts')).registerDirector,
  realserver: async () => (await import('./commands/realserver.ts')).registerRealserver,
  up: async () => (await import('./commands/up.ts')).registerUp,
  'demo-app': async () => (await import('./commands/demo-app.ts')).registerDemoApp,
};

/**
 * Builds the `tiergate` command tree (the composition root: every package meets here). With `argv`,
 * only the command it names is loaded (all of them for help, or when it names none or an unknown one).
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('tiergate')
    .description('tiergate: a layered L4 (IPVS director) + L7 (proxy) gateway for Linux, driven by one tiergate.yaml')
    .version(manifest.version, '-V, --version')
    .showHelpAfterError('(run tiergate --help for usage)')
    .exitOverride();
  const named = argv?.slice(2).find((a) => !a.startsWith('-'));
  const wanted = named !== undefined && named in COMMANDS ? [named] : Object.keys(COMMANDS);
  for (const name of wanted) (await (COMMANDS[name] as () => Promise<Register>)())(program);
  return program;
}

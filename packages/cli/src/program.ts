import { readFileSync } from 'node:fs';
import { Command } from 'commander';

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

type Register = (program: Command) => void;

/**
 * Every top-level command and the module that defines it. Modules are imported only when needed: under QEMU's
 * software CPU (the director's real-kernel tests) every module loaded costs time on each command, and loading every
 * package took 28 s for `tiergate --version`. A commands/ module declares options and help only and imports nothing
 * but commander; what a command does is in actions/ (or local-stack/, proxy-runtime/), imported by its action when it
 * runs. So help loads no package, and `validate` loads only @tiergate/config (test/startup-imports.test.ts).
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  validate: async () => (await import('./commands/validate.ts')).registerValidate,
  proxy: async () => (await import('./commands/proxy.ts')).registerProxy,
  director: async () => (await import('./commands/director.ts')).registerDirector,
  realserver: async () => (await import('./commands/realserver.ts')).registerRealserver,
  up: async () => (await import('./commands/up.ts')).registerUp,
  'demo-app': async () => (await import('./commands/demo-app.ts')).registerDemoApp,
  'warm-cache': async () => (await import('./commands/warm-cache.ts')).registerWarmCache,
};

/** `tiergate --version` (or -V) and nothing else: the one call that needs no command (Ansible runs it on every deploy). */
const VERSION_ONLY = new Set(['-V', '--version']);

/**
 * Builds the `tiergate` command tree (the composition root: every package meets here). With `argv`,
 * only the command it names is registered (none for a lone --version; all of them for help, or when it
 * names none or an unknown one, so that the error lists them).
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('tiergate')
    .description('tiergate: a layered L4 (IPVS director) + L7 (proxy) gateway for Linux, driven by one tiergate.yaml')
    .version(manifest.version, '-V, --version')
    .showHelpAfterError('(run tiergate --help for usage)')
    .exitOverride();
  const args = argv?.slice(2) ?? [];
  const named = args.find((a) => !a.startsWith('-'));
  const versionOnly = args.length > 0 && args.every((a) => VERSION_ONLY.has(a));
  const wanted = versionOnly ? [] : named !== undefined && named in COMMANDS ? [named] : Object.keys(COMMANDS);
  for (const name of wanted) (await (COMMANDS[name] as () => Promise<Register>)())(program);
  return program;
}

import { type Command, Option } from 'commander';
import type { DemoAppOpts } from '../actions/demo-app.ts';

/**
 * `tiergate demo-app --port N -c FILE [--host H] [--instance ID] [--store redis|memory] [--demo]`: one
 * demo application server with the file's sessions section (secrets, TTL, Redis) and `apps.trusted_proxies`
 * (whose X-Real-IP it believes), until SIGTERM/SIGINT. `--store memory` gives this process its own memory store: the
 * setting that loses logins behind a round-robin balancer. `--demo` turns on the built-in users and
 * the JSON captcha answer (`tiergate up` passes it; a deployed app gets it only from the inventory's
 * `app_demo`). The session cookie's Secure default follows the file's listeners (sessionCookieSecure).
 */
export function registerDemoApp(program: Command): void {
  program
    .command('demo-app')
    .description('run one demo application server (login with captcha, cart) on the file’s session store')
    .requiredOption('--port <port>', 'TCP port to listen on (0: any free port)')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--instance <id>', 'instance id shown on pages and in X-Instance-Id (default: <host>:<port>)')
    .requiredOption('-c, --config <file>', 'tiergate.yaml with a sessions section')
    .addOption(new Option('--store <kind>', 'override sessions.store').choices(['redis', 'memory']))
    .option('--demo', 'demo mode: built-in users alice/wonderland and bob/builder, the captcha answer as JSON (never on a reachable host)')
    .action(async (opts: DemoAppOpts) => (await import('../actions/demo-app.ts')).runDemoApp(opts));
}

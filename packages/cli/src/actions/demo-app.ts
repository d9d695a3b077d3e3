// What `tiergate demo-app` does; its options and help are in commands/demo-app.ts, which imports this module when it runs.
import type { IncomingMessage } from 'node:http';
import { type Config, loadConfigFile, sessionCookieSecure } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import type { Logger } from 'pino';
import { createTracedLogger, startAppCommandTelemetry } from '../process-telemetry.ts';

// @tiergate/demo-app and @tiergate/session are imported in serve(), after the OpenTelemetry Node SDK started: its
// node:http and ioredis instrumentations patch only modules imported after it (docs/telemetry.md).

export interface DemoAppOpts {
  port: string;
  host: string;
  instance?: string;
  config: string;
  store?: 'redis' | 'memory';
  demo?: boolean;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TgError('TG_CLI_USAGE', `--port: not a TCP port: ${text}`);
  return port;
}

/** `tiergate demo-app` (commands/demo-app.ts): the app until SIGTERM/SIGINT, with its telemetry. */
export async function runDemoApp(opts: DemoAppOpts): Promise<void> {
  const port = parsePort(opts.port);
  const config = await loadConfigFile(opts.config);
  if (!config.sessions) throw new TgError('TG_CONFIG_INVALID', `${opts.config}: has no sessions section`);
  const log = createTracedLogger(config.telemetry.logs.level, 'tiergate-demo-app');
  const telemetry = await startAppCommandTelemetry(config.telemetry, log, isHealthCheck);
  try {
    await serve(opts, port, config, log);
  } finally {
    // After the server closed: flushes the spans of the last requests (bounded by the export timeout).
    await telemetry.shutdown();
  }
}

/**
 * The demo app's liveness route: untraced, as the proxy probes it every few seconds per app, which would bury the
 * requests in Jaeger.
 */
function isHealthCheck(request: IncomingMessage): boolean {
  return URL.parse(request.url ?? '/', 'http://app')?.pathname === '/healthz';
}

/** Runs the app until SIGTERM/SIGINT; `config.sessions` was checked to be present. */
async function serve(opts: DemoAppOpts, port: number, config: Config, log: Logger): Promise<void> {
  const [{ startDemoApp }, { createSessionStore, RedisSessionStore, sessionErrorChannel, sessionOptionsFromConfig }] = await Promise.all([
    import('@tiergate/demo-app'),
    import('@tiergate/session'),
  ]);
  const section = config.sessions!;
  const sessions = { ...section, store: opts.store ?? section.store };
  const instanceId = opts.instance ?? `${opts.host}:${port}`;
  const store = createSessionStore(sessions);
  try {
    if (store instanceof RedisSessionStore) await store.ready();
  } catch (err) {
    await store.close();
    throw err;
  }
  const app = await startDemoApp({
    port,
    host: opts.host,
    instanceId,
    store,
    secrets: sessions.secrets,
    demo: opts.demo ?? false,
    // The apps' own list (the proxy nodes), not the proxy's: behind IPVS the proxy's peers are the clients.
    trustedProxies: config.apps?.trusted_proxies ?? [],
    session: sessionOptionsFromConfig(sessions, store, sessionCookieSecure(config, opts.host)),
  }).catch(async (err: unknown) => {
    await store.close();
    throw new TgError('TG_STACK_START_FAILED', `demo app could not listen on ${opts.host}:${port}: ${(err as Error).message}`, {
      cause: err,
    });
  });
  // Published inside the request's span: the line carries its trace_id (the client only sees a one-line body).
  const onRequestError = (message: unknown) => {
    const { error } = message as { error: unknown };
    const status = (error as { status?: number }).status ?? 500;
    log[status >= 500 ? 'error' : 'warn']({ err: error, instance: instanceId }, 'request failed');
  };
  sessionErrorChannel.subscribe(onRequestError);
  const mode = opts.demo ? ', demo mode: built-in users, JSON captcha' : '';
  process.stdout.write(`demo app ${instanceId} listening on ${app.url} (sessions: ${sessions.store}${mode})\n`);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  await app.close();
  await store.close();
  sessionErrorChannel.unsubscribe(onRequestError);
  process.stdout.write(`demo app stopped (${signal})\n`);
}

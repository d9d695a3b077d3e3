import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Config, loadConfigFile } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import { otlpTracesEndpoint } from '@tiergate/telemetry';
import { DEFAULT_STACK_CONFIG } from './default-config.ts';
import { httpOk, portIsFree, redisAnswers, waitUntilReady } from './readiness.ts';
import { resolveRedisServer } from './redis-binary.ts';
import { hostForUrl, planStack, portsOf, type StackPlan, type StackStore } from './stack-plan.ts';
import { type StackChild, StackSupervisor } from './stack-supervisor.ts';

export { DEFAULT_STACK_CONFIG };

/** The `tiergate` launcher the children run (with this Node: process.execPath is Node 24). */
const LAUNCHER = fileURLToPath(new URL('../../bin/tiergate.js', import.meta.url));

/** SIGTERM first; what still runs after this long gets SIGKILL. */
export const STOP_GRACE_MS = 5_000;
/** Per process: a loaded two-core laptop starts Node with type stripping in well under this. */
const READY_TIMEOUT_MS = 30_000;

export interface LocalStackOptions {
  /** tiergate.yaml (default: examples/local-stack.yaml of this checkout). */
  readonly config?: string;
  /** Overrides sessions.store. */
  readonly store?: StackStore;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const warn = (line: string) => process.stderr.write(`tiergate up: ${line}\n`);

/**
 * `tiergate up`: validates the file, starts redis-server (when the sessions go to a loopback Redis),
 * one demo app per server of the default route's pool and the proxy, each as a child process, waits
 * until each answers, prints what runs where, and runs until SIGINT/SIGTERM (exit 0) or until a
 * child dies (exit 1). Either way every child is stopped by PID and the temp dir removed.
 */
export async function runLocalStack(options: LocalStackOptions): Promise<number> {
  const file = resolve(options.config ?? DEFAULT_STACK_CONFIG);
  const config = await loadConfigFile(file);
  const plan = planStack(config, options.store ?? config.sessions?.store ?? 'redis');
  await assertPortsFree(plan, config);
  const redisBinary = plan.redis ? await resolveRedisServer(warn) : undefined;
  const dir = await mkdtemp(join(tmpdir(), 'tiergate-up-'));

  let finish!: (code: number) => void;
  const ended = new Promise<number>((r) => {
    finish = r;
  });
  let stopping: Promise<void> | undefined;
  const stop = (code: number): Promise<void> => {
    stopping ??= supervisor
      .stopAll(STOP_GRACE_MS)
      .then(() => rm(dir, { recursive: true, force: true }))
      .then(() => finish(code));
    return stopping;
  };
  const supervisor = new StackSupervisor({
    onUnexpectedExit: (child, code, signal) => {
      warn(`${child.name} (pid ${child.pid}) exited unexpectedly (${signal ?? `exit code ${code}`}); stopping the stack.`);
      warn(`last output of ${child.name}:\n${indentLines(child.tail())}`);
      void stop(1);
    },
  });
  const onSignal = (signal: NodeJS.Signals) => {
    warn(`${signal}: stopping the stack`);
    void stop(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const detach = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  try {
    await startAll(supervisor, plan, file, dir, redisBinary);
    if (!supervisor.stopping) say(await summary(plan, supervisor.children(), dir, config.telemetry));
  } catch (err) {
    // A signal or a dying child already started the stop and said why; anything else is reported by main.
    if (!supervisor.stopping) {
      await stop(1);
      detach();
      throw err;
    }
  }
  const code = await ended;
  detach();
  return code;
}

async function assertPortsFree(plan: StackPlan, config: Config): Promise<void> {
  for (const { host, port, owner } of portsOf(plan, config)) {
    if (!(await portIsFree(host, port))) {
      throw new TgError(
        'TG_STACK_START_FAILED',
        `${hostForUrl(host)}:${port} (for ${owner}) is already in use: is another \`tiergate up\` running? Stop it, or change the port in the file`,
      );
    }
  }
}

async function startAll(supervisor: StackSupervisor, plan: StackPlan, file: string, dir: string, redisBinary?: string): Promise<void> {
  if (plan.redis && redisBinary) {
    const { host, port, password } = plan.redis;
    // `localhost` may resolve to ::1 first for the apps (Node keeps the resolver's order): bind both,
    // the IPv6 one optional (the `-` prefix, Redis >= 7) for hosts without IPv6.
    const bind = host === 'localhost' ? ['127.0.0.1', '-::1'] : [host];
    const args = ['--port', String(port), '--bind', ...bind, '--dir', dir, '--save', '', '--appendonly', 'no'];
    if (password !== undefined) args.push('--requirepass', password);
    const redis = await supervisor.start('redis', redisBinary, args);
    await waitUntilReady(redis, `PING on ${host}:${port}`, () => redisAnswers(host, port), READY_TIMEOUT_MS);
  }
  const apps = await Promise.all(
    plan.apps.map(async (a) => ({
      app: a,
      child: await supervisor.start(a.instance, process.execPath, [
        LAUNCHER,
        'demo-app',
        // The local stack is the demo: its apps log in with the built-in users and answer the captcha in JSON.
        ...['--port', String(a.port), '--host', a.host, '--instance', a.instance, '-c', file, '--store', plan.store, '--demo'],
      ]),
    })),
  );
  for (const { app, child } of apps) {
    const url = `http://${hostForUrl(app.host)}:${app.port}/healthz`;
    await waitUntilReady(child, `GET ${url}`, () => httpOk(url), READY_TIMEOUT_MS);
  }
  const proxy = await supervisor.start('proxy', process.execPath, [LAUNCHER, 'proxy', '-c', file]);
  // Through the proxy to an app: the listener is bound and the default route reaches the pool.
  const url = `${plan.proxyUrls[0]}/healthz`;
  await waitUntilReady(proxy, `GET ${url}`, () => httpOk(url), READY_TIMEOUT_MS);
}

async function summary(plan: StackPlan, children: readonly StackChild[], dir: string, telemetry: Config['telemetry']): Promise<string> {
  const pid = (name: string) => children.find((c) => c.name === name)?.pid;
  const row = (name: string, where: string, extra = '') => `  ${name.padEnd(9)} ${where.padEnd(26)} pid ${pid(name)}${extra}`;
  const adminUp = !(await portIsFree(new URL(plan.adminUrl).hostname.replace(/^\[|\]$/g, ''), Number(new URL(plan.adminUrl).port)));
  const sessions =
    plan.store === 'redis'
      ? `redis (shared by every app: a login survives a change of instance)`
      : `memory (one store per app process: a login made on one instance is unknown to the others — the bug the Redis store fixes)`;
  return [
    '',
    `tiergate local stack is up: open ${plan.proxyUrls[0]}/`,
    '',
    ...plan.proxyUrls.map((u) => row('proxy', u, `  (pool '${plan.pool}')`)),
    ...(adminUp ? [`  ${'admin'.padEnd(9)} ${plan.adminUrl}`] : []),
    ...plan.apps.map((a) => row(a.instance, `http://${hostForUrl(a.host)}:${a.port}`)),
    ...(plan.redis ? [row('redis', `redis://${hostForUrl(plan.redis.host)}:${plan.redis.port}`)] : []),
    `  ${'sessions'.padEnd(9)} ${sessions}`,
    `  ${'tracing'.padEnd(9)} ${tracingLine(telemetry)}`,
    `  ${'temp dir'.padEnd(9)} ${dir}`,
    '',
    'Reload the page to see the instance change. Ctrl-C stops everything.',
  ].join('\n');
}

/**
 * Every child reads the same file, so its telemetry section is the whole stack's: the apps and the
 * proxy export to one endpoint, each as `<service_name>-<tier>`. The endpoint shown is the traces URL as the
 * children resolve it (the file's, else OTEL_EXPORTER_OTLP_*, which they inherit).
 */
export function tracingLine(telemetry: Config['telemetry'], env: Readonly<Record<string, string | undefined>> = process.env): string {
  const { tracing, service_name: name } = telemetry;
  if (!tracing.enabled) return 'off (telemetry.tracing.enabled: true in the file sends spans to Jaeger: docs/telemetry.md)';
  return `OTLP to ${otlpTracesEndpoint(tracing, env)} as ${name}-proxy and ${name}-app (sampling ratio ${tracing.sampling_ratio})`;
}

function indentLines(text: string): string {
  return (text.trim() || '(nothing)')
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

import { aggregateMetrics, type MetricsJson, RuntimeMetrics, startAdminServer, TicketKeyRotation } from '@tiergate/proxy';
import type { Logger } from 'pino';
import { startCommandTelemetry } from '../process-telemetry.ts';
import { announce, stopSignal } from './announce.ts';
import { FATAL_MARGIN_MS, fatalError } from './fatal.ts';
import { drainDelay, isStopSignal } from './leave.ts';
import { startProxyProcess } from './proxy-process.ts';
import { type ReadReload, serialized } from './reload-config.ts';
import type { SinglePlan } from './single-image.ts';

/**
 * `workers: 1` from start to stop: tracing (`telemetry.tracing`, started before the proxy is), the proxy (runSingle),
 * then the spans flushed after the drain. Telemetry settings are read at start only: a reload does not change them.
 */
export async function serveSingle(
  plan: SinglePlan,
  log: Logger,
  onReload: (fn: () => void) => void,
  readReload: ReadReload,
): Promise<void> {
  const telemetry = await startCommandTelemetry(plan.telemetry, 'proxy', log);
  try {
    await runSingle(plan, log, onReload, readReload);
  } finally {
    await telemetry.shutdown();
  }
}

/**
 * `workers: 1`: the proxy, its admin listener and the access log in this process, no cluster.
 * SIGHUP or POST /reload re-reads the plan's file (with `readReload`); SIGTERM/SIGINT fail the health check
 * (`monitor_uri` answers 503), keep serving for `drainDelayMs` (proxy.drain_delay), then drain and return. POST /healthcheck/fail and
 * /healthcheck/ok flip the health check by hand. An uncaught exception or unhandled rejection drains at once
 * (no delay: the process is not trusted to keep serving) and sets exit code 1 (fatal.ts).
 */
export async function runSingle(plan: SinglePlan, log: Logger, onReload: (fn: () => void) => void, readReload: ReadReload): Promise<void> {
  const { file, section } = plan;
  const trustIncomingTraceContext = plan.telemetry.tracing.trust_incoming;
  // `telemetry.metrics.enabled`: serve /metrics on the admin listener.
  const metricsEnabled = plan.telemetry.metrics.enabled;
  // Installed first, so that an error nothing caught also drains what the proxy has in flight (and exits 1).
  const fatal = fatalError(log, () => section.shutdown_timeout + FATAL_MARGIN_MS);
  const pp = await startProxyProcess(section, { log, worker: '0', trustIncomingTraceContext });
  // Replaces the session ticket keys every ssl_session_ticket_rotation (a cluster's primary does it for its workers).
  const tickets = new TicketKeyRotation(section.listeners, (i, keys) => pp.proxy.setTicketKeys(i, keys));
  const runtime = new RuntimeMetrics();
  runtime.workers.set(1);
  let draining = false;
  let failing = false;
  let delayMs = plan.drainDelayMs;
  const reload = serialized(async () => {
    try {
      const next = await readReload(file, pp.section());
      await pp.reload(next.section);
      delayMs = next.drainDelayMs;
      runtime.reloads.inc({ result: 'ok' });
      log.info({ file }, 'config reloaded');
    } catch (err) {
      runtime.reloads.inc({ result: 'error' });
      log.error(
        { file, error: { code: (err as { code?: string }).code, message: (err as Error).message } },
        'reload rejected; the running config stays',
      );
      throw err;
    }
  });
  const admin = await startAdminServer(
    section.admin,
    {
      snapshots: async () => [(await pp.snapshot()).snapshot],
      ...(metricsEnabled && {
        metrics: async (format) =>
          aggregateMetrics([(await pp.snapshot()).metrics, (await runtime.registry.getMetricsAsJSON()) as MetricsJson], format),
      }),
      draining: () => draining || failing,
      reload,
      healthCheck: async (fail) => {
        failing = fail;
        pp.proxy.failHealthCheck(fail);
      },
    },
    log,
  ).catch(async (err: unknown) => {
    tickets.stop();
    await pp.close();
    throw err;
  });
  onReload(() => void reload().catch(() => {}));
  announce(pp.proxy.addresses(), admin.address(), 1);
  const signal = await Promise.race([stopSignal(), fatal]);
  if (isStopSignal(signal)) {
    failing = true;
    pp.proxy.failHealthCheck(true);
    await drainDelay(delayMs, log);
  }
  log.info({ signal }, 'draining');
  draining = true;
  tickets.stop();
  await pp.close();
  await admin.close();
  log.info('stopped');
}

import {
  aggregateMetrics,
  type MetricsJson,
  type ProxySection,
  RuntimeMetrics,
  startAdminServer,
  TicketKeyRotation,
} from '@tiergate/proxy';
import type { Logger } from 'pino';
import { announce, stopSignal } from './announce.ts';
import { FATAL_MARGIN_MS, fatalError } from './fatal.ts';
import { drainDelay, isStopSignal } from './leave.ts';
import { startProxyProcess } from './proxy-process.ts';
import { loadReload, serialized } from './reload-config.ts';

/**
 * `workers: 1`: the proxy, its admin listener and the access log in this process, no cluster.
 * SIGHUP or POST /reload re-reads `file`; SIGTERM/SIGINT fail the health check (`monitor_uri` answers 503),
 * keep serving for `drainDelayMs` (proxy.drain_delay), then drain and return. POST /healthcheck/fail and
 * /healthcheck/ok flip the health check by hand. An uncaught exception or unhandled rejection drains at once
 * (no delay: the process is not trusted to keep serving) and sets exit code 1 (fatal.ts).
 */
export async function runSingle(
  file: string,
  section: ProxySection,
  log: Logger,
  onReload: (fn: () => void) => void,
  trustIncomingTraceContext = false,
  drainDelayMs = 0,
  /** `telemetry.metrics.enabled`: serve /metrics on the admin listener. */
  metricsEnabled = true,
): Promise<void> {
  // Installed first, so that an error nothing caught also drains what the proxy has in flight (and exits 1).
  const fatal = fatalError(log, () => section.shutdown_timeout + FATAL_MARGIN_MS);
  const pp = await startProxyProcess(section, { log, worker: '0', trustIncomingTraceContext });
  // Replaces the session ticket keys every ssl_session_ticket_rotation (a cluster's primary does it for its workers).
  const tickets = new TicketKeyRotation(section.listeners, (i, keys) => pp.proxy.setTicketKeys(i, keys));
  const runtime = new RuntimeMetrics();
  runtime.workers.set(1);
  let draining = false;
  let failing = false;
  let delayMs = drainDelayMs;
  const reload = serialized(async () => {
    try {
      const next = await loadReload(file, pp.section());
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

import { aggregateMetrics, type MetricsJson, type ProxySection, RuntimeMetrics, startAdminServer } from '@tiergate/proxy';
import type { Logger } from 'pino';
import { announce, stopSignal } from './announce.ts';
import { FATAL_MARGIN_MS, fatalError } from './fatal.ts';
import { startProxyProcess } from './proxy-process.ts';
import { loadReload, serialized } from './reload-config.ts';

/**
 * `workers: 1`: the proxy, its admin listener and the access log in this process, no cluster.
 * SIGHUP or POST /reload re-reads `file`; SIGTERM/SIGINT drain and return. An uncaught exception or
 * unhandled rejection drains the same way and sets exit code 1 (fatal.ts).
 */
export async function runSingle(
  file: string,
  section: ProxySection,
  log: Logger,
  onReload: (fn: () => void) => void,
  trustIncomingTraceContext = false,
  /** `telemetry.metrics.enabled`: serve /metrics on the admin listener. */
  metricsEnabled = true,
): Promise<void> {
  // Installed first, so that an error nothing caught also drains what the proxy has in flight (and exits 1).
  const fatal = fatalError(log, () => section.shutdown_timeout + FATAL_MARGIN_MS);
  const pp = await startProxyProcess(section, { log, worker: '0', trustIncomingTraceContext });
  const runtime = new RuntimeMetrics();
  runtime.workers.set(1);
  let draining = false;
  const reload = serialized(async () => {
    try {
      await pp.reload(await loadReload(file, pp.section()));
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
      draining: () => draining,
      reload,
    },
    log,
  ).catch(async (err: unknown) => {
    await pp.close();
    throw err;
  });
  onReload(() => void reload().catch(() => {}));
  announce(pp.proxy.addresses(), admin.address(), 1);
  const signal = await Promise.race([stopSignal(), fatal]);
  log.info({ signal }, 'draining');
  draining = true;
  await pp.close();
  await admin.close();
  log.info('stopped');
}

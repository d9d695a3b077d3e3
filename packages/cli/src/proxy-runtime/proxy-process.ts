import { isTgError, TgError } from '@tiergate/errors';
import {
  type AccessLog,
  type MetricsJson,
  type ProxyLogger,
  ProxyMetrics,
  type ProxySection,
  type ProxyServer,
  startAccessLog,
  startProxy,
  type WorkerSnapshot,
} from '@tiergate/proxy';
import type { WireError } from './ipc.ts';

/** `reload` is added to ProxyServer by the data plane; typed optional so this file does not depend on when. */
type Reloadable = ProxyServer & { reload?: (section: ProxySection) => Promise<void> };

/**
 * The data plane's own access_log hook logs to the process logger (stderr); the runtime writes the
 * access log to stdout from the request channel instead, so the data plane's copy is switched off.
 */
function dataPlane(section: ProxySection): ProxySection {
  return { ...section, access_log: false };
}

/** One process serving requests: the proxy, its metrics, and the access log when configured. */
export interface ProxyProcess {
  readonly proxy: ProxyServer;
  readonly metrics: ProxyMetrics;
  section(): ProxySection;
  /** Applies a validated section (listeners unchanged); rejects with a TgError and keeps the old one. */
  reload(section: ProxySection): Promise<void>;
  snapshot(): Promise<{ snapshot: WorkerSnapshot; metrics: MetricsJson }>;
  /** Graceful: drains in-flight requests (up to shutdown_timeout), then flushes the access log. */
  close(): Promise<void>;
}

/** `trustIncomingTraceContext`: the file's `telemetry.tracing.trust_incoming` (spans need this process's SDK started first). */
export async function startProxyProcess(
  section: ProxySection,
  opts: { log: ProxyLogger; worker: string; trustIncomingTraceContext?: boolean; ticketKeys?: readonly (Buffer | undefined)[] },
): Promise<ProxyProcess> {
  const proxy = (await startProxy(dataPlane(section), {
    logger: opts.log,
    trustIncomingTraceContext: opts.trustIncomingTraceContext ?? false,
    ...(opts.ticketKeys && { ticketKeys: opts.ticketKeys }),
  })) as Reloadable;
  const metrics = new ProxyMetrics(proxy, section, { worker: opts.worker });
  let current = section;
  let accessLog: AccessLog | undefined = section.access_log ? startAccessLog() : undefined;
  return {
    proxy,
    metrics,
    section: () => current,
    async reload(next) {
      if (!proxy.reload) throw new TgError('TG_PROXY_RELOAD_REJECTED', 'this proxy build cannot reload; restart it instead');
      await proxy.reload(dataPlane(next));
      current = next;
      metrics.setSection(next);
      if (next.access_log && !accessLog) accessLog = startAccessLog();
      if (!next.access_log && accessLog) {
        await accessLog.close();
        accessLog = undefined;
      }
    },
    snapshot: async () => ({ snapshot: metrics.snapshot(), metrics: (await metrics.registry.getMetricsAsJSON()) as MetricsJson }),
    async close() {
      await proxy.close();
      metrics.close();
      await accessLog?.close();
    },
  };
}

/** An error for the IPC channel or the admin endpoint: TgErrors keep code and message, others become TG_ADMIN_FAILED. */
export function toWire(err: unknown): WireError {
  return isTgError(err)
    ? { code: err.code, message: err.message }
    : { code: 'TG_ADMIN_FAILED', message: String((err as Error)?.message ?? err) };
}

// Public surface of @tiergate/proxy.
export {
  ACCESS_LOG_FLUSH_MS,
  type AccessLog,
  type AccessLogOptions,
  type AccessRecord,
  accessLine,
  accessLogBatch,
  accessRecord,
  startAccessLog,
} from './access-log.ts';
export {
  type AdminConfig,
  type AdminServer,
  type AdminSource,
  type AdminStatus,
  mergeStatus,
  readiness,
  type ServerView,
  startAdminServer,
} from './admin-server.ts';
export { ATTEMPT_CHANNEL, type AttemptEvent, REQUEST_CHANNEL, type RequestEvent } from './channels.ts';
export { realClientAddress, unmapIPv4 } from './client-address.ts';
export { type ClientCertFacts, ListenerTls, listenerTlsOptions, TICKET_KEY_BYTES, TicketKeyRotation } from './listener-tls.ts';
export {
  aggregateMetrics,
  type ExpositionFormat,
  expositionFormat,
  LatencyReservoir,
  type MetricsJson,
  ProxyMetrics,
  type ProxyMetricsOptions,
  percentiles,
  RuntimeMetrics,
  type ServerCounters,
  type WorkerSnapshot,
} from './metrics.ts';
export {
  type BoundAddress,
  type ProxyLogger,
  type ProxySection,
  type ProxyServer,
  type ProxyStatus,
  type StartProxyOptions,
  startProxy,
} from './proxy-server.ts';
export { RouteTable, stripPort } from './route-table.ts';
export { proxyStatusPage, proxyStatusView } from './status-page.ts';

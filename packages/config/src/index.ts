export { familyOf, isLoopbackAddress, parseCidr, splitHostPort, toBlockList } from './address.ts';
export {
  type AdminAccess,
  type AdminRefusal,
  type AdminRequest,
  bearerTokenMatches,
  checkAdminRequest,
} from './admin-access.ts';
export {
  STATUS_PAGE_REFRESH_S,
  type StatusPage,
  type StatusPageRow,
  type StatusPageSpec,
  type StatusPageView,
  statusPage,
  statusPageAccess,
} from './admin-page.ts';
export { DEFAULT_DRAIN_DELAY_MS, DRAIN_DELAY_MARGIN_MS, type DrainDelayFacts, drainDelayMs } from './drain-delay.ts';
export {
  type CheckedConfig,
  type Config,
  type ConfigIssue,
  type DeepReadonly,
  formatIssue,
  formatPath,
  formatWarning,
  loadConfigFile,
  loadConfigFileWithWarnings,
  parseConfig,
  parseConfigWithWarnings,
  validateConfig,
  virtualServiceSourceText,
} from './load.ts';
export {
  ALGORITHM_NAMES,
  type AppsConfig,
  type DirectorConfig,
  type L4HealthCheckConfig,
  type L7HealthCheckConfig,
  type ListenerConfig,
  type ListenerTlsConfig,
  type PoolConfig,
  type ProxyConfig,
  type RealServerConfig,
  type RouteConfig,
  SCHEDULERS,
  type SessionsConfig,
  type TelemetryConfig,
  type TiergateConfig,
  tiergateConfigSchema,
  type UpstreamServerConfig,
  type VirtualServiceConfig,
} from './schema.ts';
export { type SessionCookieFacts, sessionCookieSecure } from './session-cookie.ts';
export { duration, size } from './units.ts';
export { type ConfigWarning, configWarnings, KNOWN_DEMO_SECRETS } from './warnings.ts';

export { familyOf, parseCidr, splitHostPort, toBlockList } from './address.ts';
export {
  type AdminAccess,
  type AdminRefusal,
  type AdminRequest,
  bearerTokenMatches,
  checkAdminRequest,
  isLoopbackAddress,
} from './admin-access.ts';
export {
  type Config,
  type ConfigIssue,
  type DeepReadonly,
  formatIssue,
  formatPath,
  loadConfigFile,
  parseConfig,
  validateConfig,
  virtualServiceSourceText,
} from './load.ts';
export {
  ALGORITHM_NAMES,
  type DirectorConfig,
  type L4HealthCheckConfig,
  type L7HealthCheckConfig,
  type ListenerConfig,
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

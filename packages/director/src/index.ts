// Public surface of @tiergate/director: the pure planner (desired, drain, plan), apply, the reconcile loop and host setup.

// The CLI reaches the kernel only through the director: these are the driver registry and the dry-run renderer.
export { formatIpvsadmCommand, type IpvsDriverName, openIpvsDriver } from '@tiergate/ipvs';
export { type AdminServer, startAdminServer } from './admin-server.ts';
export { type ApplyReport, applyOps, type IpvsWriter, type PartialApplyDetails } from './apply.ts';
export {
  type CycleInput,
  type CycleResult,
  reconcileCycle,
  reconcileServices,
  type ServicesCycleInput,
  type ServicesCycleResult,
} from './cycle.ts';
export {
  configuredKeys,
  configuredServiceKeys,
  desiredEntries,
  destPortOf,
  type HealthSnapshot,
  healthKey,
  serviceIdOfConfig,
  serviceOfConfig,
  type VirtualService,
} from './desired.ts';
export { type DrainInput, type DrainResult, type DrainTimes, settingsOf, withDraining } from './drain.ts';
export {
  applyDirectorSysctls,
  type DaemonDriver,
  detectRealServerInterface,
  directorSysctls,
  emptyRealServerState,
  ensureSyncDaemon,
  followsVrrp,
  type HostAddress,
  type HostChanges,
  holdsPairVip,
  PROC_SYS,
  pairVips,
  planSyncDaemons,
  type RealServerPlan,
  type RealServerState,
  realServerDown,
  realServerPlan,
  realServerUp,
  type SyncDaemonPlan,
  setupDirectorHost,
  sysctlPath,
  wantedSyncDaemon,
} from './host-setup.ts';
export { createLogger, type Logger, silentLogger } from './logger.ts';
export { type HeldPhase, type HeldServer, type HeldServers, heldMode, type ResolvedServer, resolveServer } from './manual-drain.ts';
export { DirectorMetrics } from './metrics.ts';
export { describeOp, destSettingsDiffer, OP_ORDER, type Op, type OpKind, orderOps, plan, serviceSettingsDiffer } from './plan.ts';
export { checkSpecOf, RealServerHealth, type RealServerHealthStatus } from './real-server-health.ts';
export {
  buildStatus,
  type CycleKind,
  DEFAULT_RESYNC_MS,
  type DestinationStatus,
  Director,
  type DirectorOptions,
  type DirectorStatus,
  type HeldStatus,
  type ManualDrainResult,
  type ServiceStatus,
  type StatsJson,
  statsJson,
} from './reconciler.ts';
export { isSettled, type RouteOfServer, type RouteState, routesOf } from './routed.ts';
export {
  type DirectorState,
  defaultStatePath,
  EMPTY_STATE,
  FileStateStore,
  JsonFile,
  MemoryStateStore,
  netnsId,
  type StateStore,
} from './state-store.ts';
export { directorStatusPage, directorStatusView } from './status-page.ts';
export { formatStatusTable } from './status-table.ts';
export {
  defaultVrrpStatePath,
  formatHaStatus,
  type HaStatus,
  haStatus,
  readVrrpState,
  SyncRoleFollower,
  type SyncRoleFollowerOptions,
  type VrrpStateRecord,
} from './sync-role.ts';
export { TableModel } from './table-model.ts';

// Public surface of @tiergate/health.
export { CHECKERS, createChecker } from './checkers.ts';
export { CommandChecker } from './command-checker.ts';
export { GrpcChecker } from './grpc-checker.ts';
export { DEFAULT_EXPECT_STATUS, DEFAULT_MAX_BODY_BYTES, HttpChecker } from './http-checker.ts';
export {
  CHECK_CHANNEL,
  type CheckEvent,
  type HealthChange,
  HealthMonitor,
  type HealthMonitorOptions,
  jitteredDelay,
  type TargetHealth,
  TRANSITION_CHANNEL,
  targetKey,
} from './monitor.ts';
export {
  initialRiseFall,
  type RiseFallState,
  type RiseFallStep,
  type RiseFallThresholds,
  type RiseFallTransition,
  stepRiseFall,
} from './rise-fall.ts';
export {
  type CheckerSpec,
  type CheckTiming,
  type CommandCheckSpec,
  DEFAULT_TIMING,
  type GrpcCheckSpec,
  type HealthCheckSpec,
  type HttpCheckSpec,
  resolveTiming,
  type SpecOf,
  type StatusRange,
  type TcpCheckSpec,
  type TlsFiles,
} from './spec.ts';
export { TcpChecker } from './tcp-checker.ts';
export * from './types.ts';

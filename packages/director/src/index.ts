// Public surface of @tiergate/director: the pure planner (desired, drain, plan), apply, the reconcile loop and host setup.
export { type ApplyReport, applyOps, type IpvsWriter, type PartialApplyDetails } from './apply.ts';
export {
  configuredKeys,
  desiredEntries,
  destPortOf,
  type HealthSnapshot,
  healthKey,
  serviceIdOfConfig,
  serviceOfConfig,
  type VirtualService,
} from './desired.ts';
export { type DrainInput, type DrainResult, type DrainTimes, settingsOf, withDraining } from './drain.ts';
export { describeOp, destSettingsDiffer, OP_ORDER, type Op, type OpKind, orderOps, plan, serviceSettingsDiffer } from './plan.ts';

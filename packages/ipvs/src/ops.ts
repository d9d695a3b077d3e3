import type { IpvsDestinationId, IpvsDriver } from './driver.ts';
import type { IpvsDaemon, IpvsDaemonState, IpvsDestination, IpvsService, IpvsServiceId, IpvsTimeouts } from './model.ts';

/**
 * One kernel write, as data: what the director's planner emits, what dry-run prints (through
 * formatIpvsadmCommand) and what applyIpvsOp executes on any driver.
 */
export type IpvsOp =
  | { kind: 'add-service'; service: IpvsService }
  | { kind: 'update-service'; service: IpvsService }
  | { kind: 'delete-service'; service: IpvsServiceId }
  | { kind: 'add-destination'; service: IpvsServiceId; destination: IpvsDestination }
  | { kind: 'update-destination'; service: IpvsServiceId; destination: IpvsDestination }
  | { kind: 'delete-destination'; service: IpvsServiceId; destination: IpvsDestinationId }
  | { kind: 'set-timeouts'; timeouts: Partial<IpvsTimeouts> }
  | { kind: 'start-daemon'; daemon: IpvsDaemon }
  | { kind: 'stop-daemon'; state: IpvsDaemonState }
  | { kind: 'zero'; service?: IpvsServiceId }
  | { kind: 'flush' };

/** What the kernel answered one op of a batch: applied, or the driver's error (a TgError naming the op). */
export type IpvsOpResult = { readonly ok: true } | { readonly ok: false; readonly error: unknown };

const APPLIED: IpvsOpResult = Object.freeze({ ok: true });

/**
 * `IpvsDriver.applyBatch` for a driver without a cheaper way: every op in order, one at a time, each attempted
 * whatever the ones before it answered.
 */
export async function applyIpvsOpsInTurn(driver: IpvsDriver, ops: readonly IpvsOp[]): Promise<IpvsOpResult[]> {
  const results: IpvsOpResult[] = [];
  for (const op of ops) {
    try {
      await applyIpvsOp(driver, op);
      results.push(APPLIED);
    } catch (error) {
      results.push({ ok: false, error });
    }
  }
  return results;
}

/** Executes one op on a driver. */
export async function applyIpvsOp(driver: IpvsDriver, op: IpvsOp): Promise<void> {
  switch (op.kind) {
    case 'add-service':
      return driver.addService(op.service);
    case 'update-service':
      return driver.updateService(op.service);
    case 'delete-service':
      return driver.deleteService(op.service);
    case 'add-destination':
      return driver.addDestination(op.service, op.destination);
    case 'update-destination':
      return driver.updateDestination(op.service, op.destination);
    case 'delete-destination':
      return driver.deleteDestination(op.service, op.destination);
    case 'set-timeouts':
      return driver.setTimeouts(op.timeouts);
    case 'start-daemon':
      return driver.startDaemon(op.daemon);
    case 'stop-daemon':
      return driver.stopDaemon(op.state);
    case 'zero':
      return driver.zero(op.service);
    case 'flush':
      return driver.flush();
  }
}

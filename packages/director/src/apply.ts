import { isTgError, TgError } from '@tiergate/errors';
import type { IpvsDriver } from '@tiergate/ipvs';
import { describeOp, type Op, orderOps } from './plan.ts';

/** The part of an IPVS driver that apply writes through. */
export type IpvsWriter = Pick<
  IpvsDriver,
  'addService' | 'updateService' | 'deleteService' | 'addDestination' | 'updateDestination' | 'deleteDestination'
>;

export interface ApplyReport {
  /** Ops done, in order (including the tolerated ones). */
  readonly applied: Op[];
  /**
   * Ops the kernel answered with "already so" (EEXIST on add, ESRCH/ENOENT on delete): someone changed the
   * table since it was read. The caller should re-read before trusting its picture of the table.
   */
  readonly tolerated: Op[];
}

/** What TG_DIRECTOR_APPLY_PARTIAL carries in `details`. */
export interface PartialApplyDetails {
  readonly applied: string[];
  readonly failed: { readonly op: string; readonly code: string; readonly message: string };
  readonly notAttempted: string[];
}

/**
 * Executes ops in the safe order (OP_ORDER), one at a time. Idempotent in the kube-proxy way: an add that finds
 * the object present and a delete that finds it gone count as done. Any other failure stops the run and throws
 * TG_DIRECTOR_APPLY_PARTIAL (cause = the driver error) whose details list exactly the ops applied, the op that
 * failed and those not attempted; the table is left as it is, and the next reconcile converges from there.
 */
export async function applyOps(writer: IpvsWriter, ops: readonly Op[]): Promise<ApplyReport> {
  const ordered = orderOps(ops);
  const applied: Op[] = [];
  const tolerated: Op[] = [];
  for (const [i, op] of ordered.entries()) {
    try {
      await execute(writer, op);
    } catch (err) {
      if (!alreadyDone(op, err)) throw partial(applied, op, ordered.slice(i + 1), err);
      tolerated.push(op);
    }
    applied.push(op);
  }
  return { applied, tolerated };
}

function execute(w: IpvsWriter, op: Op): Promise<void> {
  switch (op.kind) {
    case 'add-service':
      return w.addService(op.service);
    case 'update-service':
      return w.updateService(op.service);
    case 'delete-service':
      return w.deleteService(op.service);
    case 'add-destination':
      return w.addDestination(op.service, op.destination);
    case 'update-destination':
      return w.updateDestination(op.service, op.destination);
    case 'delete-destination':
      return w.deleteDestination(op.service, op.destination);
  }
}

/** Reference §2.10: EEXIST on add, ESRCH (service) / ENOENT (destination) on delete mean the goal already holds. */
function alreadyDone(op: Op, err: unknown): boolean {
  if (op.kind === 'add-service' || op.kind === 'add-destination') return isTgError(err, 'TG_IPVS_EXISTS');
  if (op.kind === 'delete-service') return isTgError(err, 'TG_IPVS_NO_SERVICE');
  if (op.kind === 'delete-destination') return isTgError(err, 'TG_IPVS_NOT_FOUND') || isTgError(err, 'TG_IPVS_NO_SERVICE');
  return false;
}

function partial(applied: readonly Op[], failed: Op, rest: readonly Op[], err: unknown): TgError {
  const code = isTgError(err) ? err.code : 'unknown';
  const message = err instanceof Error ? err.message : String(err);
  const details: PartialApplyDetails = {
    applied: applied.map(describeOp),
    failed: { op: describeOp(failed), code, message },
    notAttempted: rest.map(describeOp),
  };
  return new TgError(
    'TG_DIRECTOR_APPLY_PARTIAL',
    `apply stopped after ${applied.length} of ${applied.length + 1 + rest.length} ops: ${details.failed.op} failed: ${message}`,
    { cause: err, details },
  );
}

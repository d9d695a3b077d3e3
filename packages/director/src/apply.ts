import { isTgError, TgError } from '@tiergate/errors';
import type { IpvsDriver } from '@tiergate/ipvs';
import { describeOp, OP_ORDER, type Op, type OpKind, orderOps } from './plan.ts';

/** The part of an IPVS driver that apply writes through: ops in batches, an answer per op. */
export type IpvsWriter = Pick<IpvsDriver, 'applyBatch'>;

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
  /** Every op the kernel took, in order (those of the failing step included). */
  readonly applied: string[];
  /** Every op of the failing step that failed, each with its own error. */
  readonly failed: { readonly op: string; readonly code: string; readonly message: string }[];
  /** The ops of the steps after it. */
  readonly notAttempted: string[];
}

/**
 * Executes ops in the safe order (OP_ORDER), one step per kind of op: each step is one `applyBatch` (a few
 * netlink datagrams for thousands of ops), and within a step no op depends on another, so the kernel goes on
 * past a failure and answers for every op. Idempotent in the kube-proxy way: an add that finds the object present
 * and a delete that finds it gone count as done. Any other failure ends the run after its step and throws
 * TG_DIRECTOR_APPLY_PARTIAL (cause = the first failure's driver error) whose details list exactly the ops
 * applied, every op that failed and those not attempted: a failed add-service stops before its destinations,
 * a failed add-destination before any removal. The table is left as it is; the next reconcile converges.
 */
export async function applyOps(writer: IpvsWriter, ops: readonly Op[]): Promise<ApplyReport> {
  const ordered = inOrder(ops) ? ops : orderOps(ops);
  const applied: Op[] = [];
  const tolerated: Op[] = [];
  for (let start = 0; start < ordered.length; ) {
    const end = stepEnd(ordered, start);
    const step = ordered.slice(start, end);
    const results = await writer.applyBatch(step);
    const failed: Failure[] = [];
    for (let i = 0; i < step.length; i++) {
      const op = step[i] as Op;
      const r = results[i] ?? { ok: false, error: new Error('the driver gave no answer for this op') };
      if (r.ok) applied.push(op);
      else if (alreadyDone(op, r.error)) {
        applied.push(op);
        tolerated.push(op);
      } else failed.push({ op, error: r.error });
    }
    if (failed.length > 0) throw partial(applied, failed, ordered.slice(end));
    start = end;
  }
  return { applied, tolerated };
}

interface Failure {
  readonly op: Op;
  readonly error: unknown;
}

/** Whether ops are in OP_ORDER already (plan's are): checking is one pass, sorting a full apply's ops is not free. */
function inOrder(ops: readonly Op[]): boolean {
  let kind: OpKind | undefined;
  let rank = 0;
  for (let i = 0; i < ops.length; i++) {
    const k = (ops[i] as Op).kind;
    if (k === kind) continue;
    const r = OP_ORDER.indexOf(k);
    if (r < rank) return false;
    kind = k;
    rank = r;
  }
  return true;
}

/** The end (exclusive) of the run of ops of one kind starting at `start` (ops are in OP_ORDER). */
function stepEnd(ops: readonly Op[], start: number): number {
  const kind = (ops[start] as Op).kind;
  let end = start + 1;
  while (end < ops.length && (ops[end] as Op).kind === kind) end += 1;
  return end;
}

/** Reference §2.10: EEXIST on add, ESRCH (service) / ENOENT (destination) on delete mean the goal already holds. */
function alreadyDone(op: Op, err: unknown): boolean {
  if (op.kind === 'add-service' || op.kind === 'add-destination') return isTgError(err, 'TG_IPVS_EXISTS');
  if (op.kind === 'delete-service') return isTgError(err, 'TG_IPVS_NO_SERVICE');
  if (op.kind === 'delete-destination') return isTgError(err, 'TG_IPVS_NOT_FOUND') || isTgError(err, 'TG_IPVS_NO_SERVICE');
  return false;
}

function partial(applied: readonly Op[], failed: readonly Failure[], rest: readonly Op[]): TgError {
  const described = failed.map(({ op, error }) => ({
    op: describeOp(op),
    code: isTgError(error) ? error.code : 'unknown',
    message: error instanceof Error ? error.message : String(error),
  }));
  const details: PartialApplyDetails = { applied: applied.map(describeOp), failed: described, notAttempted: rest.map(describeOp) };
  const [first] = described as [PartialApplyDetails['failed'][number]];
  const more = failed.length > 1 ? ` (and ${failed.length - 1} more op${failed.length > 2 ? 's' : ''} failed)` : '';
  const total = applied.length + failed.length + rest.length;
  return new TgError(
    'TG_DIRECTOR_APPLY_PARTIAL',
    `apply stopped with ${applied.length} of ${total} ops applied: ${first.op} failed: ${first.message}${more}`,
    { cause: failed[0]?.error, details },
  );
}

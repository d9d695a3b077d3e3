import { constants } from 'node:os';
import { type ErrorCode, TgError } from '@tiergate/errors';
import { ERRNO } from './netlink/constants.ts';

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** `ENOENT` for 2; `errno 999` for numbers the platform does not name. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** What an IPVS errno means in IPVS terms (reference §2.10), with its stable code. */
export function describeIpvsErrno(errno: number): { code: ErrorCode; text: string } {
  switch (errno) {
    case ERRNO.EPERM:
      return { code: 'TG_IPVS_PERMISSION', text: 'permission denied: IPVS needs root or CAP_NET_ADMIN (EPERM)' };
    case ERRNO.EEXIST:
      return { code: 'TG_IPVS_EXISTS', text: 'it already exists (EEXIST)' };
    case ERRNO.ESRCH:
      return { code: 'TG_IPVS_NO_SERVICE', text: 'no such service (ESRCH)' };
    case ERRNO.ENOENT:
      return { code: 'TG_IPVS_NOT_FOUND', text: 'not found: no such destination, scheduler or persistence engine (ENOENT)' };
    case ERRNO.ERANGE:
      return {
        code: 'TG_IPVS_RANGE',
        text: 'value out of range: weight must be below 2^31 and the lower threshold not above the upper (ERANGE)',
      };
    case ERRNO.EINVAL:
      return { code: 'TG_IPVS_INVALID', text: 'the kernel rejected the request as invalid (EINVAL)' };
    default:
      return { code: 'TG_IPVS_KERNEL', text: `the kernel answered ${errnoName(errno)}` };
  }
}

/** Context of a failed IPVS operation: what was done (`add destination`) to what (`10.0.0.11:80 to TCP 192.0.2.10:80`). */
export interface IpvsOpContext {
  op: string;
  object?: string;
}

/**
 * The TgError for a failed IPVS operation, e.g. "add destination 10.0.0.11:80 to TCP 192.0.2.10:80:
 * it already exists (EEXIST)". The kernel's extended-ack text is appended when present; errno,
 * op and object go to `details`, the low-level error to `cause`.
 */
export function ipvsErrnoError(ctx: IpvsOpContext, errno: number, cause: unknown, extAckMessage?: string): TgError {
  const { code, text } = describeIpvsErrno(errno);
  const what = ctx.object ? `${ctx.op} ${ctx.object}` : ctx.op;
  const ext = extAckMessage ? ` (kernel: ${extAckMessage})` : '';
  return new TgError(code, `${what}: ${text}${ext}`, {
    cause,
    details: { op: ctx.op, object: ctx.object, errno, errnoName: errnoName(errno), extAckMessage },
  });
}

/**
 * The TgError for an op of a batch whose ACK never came (TG_IPVS_KERNEL): the kernel may or may not have
 * applied it, so the caller must re-read the table rather than trust either answer.
 */
export function ipvsLostAckError(ctx: IpvsOpContext, errno: number): TgError {
  const what = ctx.object ? `${ctx.op} ${ctx.object}` : ctx.op;
  const why = errno === ERRNO.ENOBUFS ? 'the netlink receive buffer overran' : `waiting for it failed with ${errnoName(errno)}`;
  return new TgError('TG_IPVS_KERNEL', `${what}: no answer from the kernel (${why}): whether it was applied is unknown`, {
    details: { op: ctx.op, object: ctx.object, errno, errnoName: errnoName(errno), lost: true },
  });
}

import { ERROR_CODES, type ErrorCode } from './codes.ts';

/**
 * The one error type tiergate throws on purpose. `code` is stable and documented in
 * docs/errors.md; `cause` keeps the underlying error; `details` carries structured data
 * for callers (e.g. the list of validation issues, or the ops an apply completed).
 */
export class TgError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TgError';
    this.code = code;
    this.details = options.details;
  }

  /** The HTTP status this error maps to (one exhaustive table: ERROR_CODES). */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  /** The process exit code a CLI command ending in this error uses. */
  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export function isTgError(err: unknown, code?: ErrorCode): err is TgError {
  return err instanceof TgError && (code === undefined || err.code === code);
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

import pino from 'pino';

/** The logging the director needs; pino loggers fit it. Libraries take it as a parameter. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * JSON lines on stdout (pino), for the daemon. `mixin` adds fields to every line: the CLI passes
 * @tiergate/telemetry's logContext so lines written inside a span carry its trace_id and span_id.
 */
export function createLogger(level = 'info', name = 'tiergate-director', mixin?: () => object): Logger {
  return pino({ name, level, ...(mixin ? { mixin } : {}) });
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import {
  logContext,
  startAppTelemetry,
  startTelemetry,
  type TelemetryHandle,
  type TelemetrySettings,
  type Tier,
} from '@tiergate/telemetry';
import pino, { type Logger } from 'pino';

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Where a command's SDK diagnostics go: a pino logger or the director's Logger. */
interface DiagnosticSink {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Starts OpenTelemetry for a long-running command as the file's `telemetry` section says (a no-op
 * handle, with no SDK module loaded, when tracing is off). It must run before the command imports
 * what it wants instrumented (docs/telemetry.md). The SDK's own warnings
 * (a failed export) go to `log`, as it never throws into the process. The caller calls shutdown()
 * on SIGTERM/SIGINT, after it stopped taking work, so the queued spans are flushed.
 */
export function startCommandTelemetry(settings: TelemetrySettings, tier: Tier, log: DiagnosticSink): Promise<TelemetryHandle> {
  return startTelemetry(settings, {
    tier,
    version: manifest.version,
    onDiagnostic: (level, message) => log[level]({ component: 'opentelemetry' }, message),
  });
}

/**
 * Starts the standard OpenTelemetry Node SDK for an app server command (`tiergate demo-app`): the node:http and
 * ioredis instrumentations, the OTEL_* environment, the file's `telemetry.tracing` over it where set (a no-op handle,
 * no SDK module loaded, when tracing is off). It must run before the command imports the app and its session store:
 * the instrumentations patch modules as they are imported. `ignore` names the requests that get no span.
 */
export function startAppCommandTelemetry(
  settings: TelemetrySettings,
  log: DiagnosticSink,
  ignore: (request: IncomingMessage) => boolean,
): Promise<TelemetryHandle> {
  return startAppTelemetry(settings, {
    version: manifest.version,
    ignoreIncomingRequest: ignore,
    onDiagnostic: (level, message) => log[level]({ component: 'opentelemetry' }, message),
  });
}

/**
 * A JSON-lines logger on stderr (stdout stays for the lines tests and `tiergate up` read) whose lines
 * written inside a span carry `trace_id`, `span_id` and `trace_flags`: search Jaeger for a line's trace.
 */
export function createTracedLogger(level: string, name: string): Logger {
  return pino({ name, level, base: { pid: process.pid }, mixin: logContext }, pino.destination({ dest: 2, sync: true }));
}

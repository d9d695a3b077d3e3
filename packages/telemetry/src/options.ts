import type { DeepReadonly, TelemetryConfig } from '@tiergate/config';

/** The `telemetry` section of tiergate.yaml, as the loaded (frozen) config holds it. */
export type TelemetrySettings = DeepReadonly<TelemetryConfig>;

/** Which part of the stack a process is; it becomes the `tiergate.tier` resource attribute. */
export type Tier = 'proxy' | 'app' | 'director';

/** What the calling process tells startTelemetry about itself. */
export interface StartTelemetryOptions {
  tier: Tier;
  /** Becomes `service.version` (the tiergate or app version). */
  version: string;
  /** Replaces the default service name `<telemetry.service_name>-<tier>`. */
  serviceName?: string;
  /** Becomes `service.instance.id` (default: a random UUID per process, as the semantic conventions advise). */
  instanceId?: string;
  /**
   * How long one export may take, retries included (default 10 s, the OTLP exporter default). With
   * the collector down, shutdown() waits about this long before giving the spans up.
   */
  exportTimeoutMs?: number;
  /**
   * Where the OTEL_EXPORTER_OTLP_* variables are read (default: process.env); telemetry.tracing's own keys win over
   * them (exporters/otlp-export-settings.ts).
   */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * `http/protobuf` only: send from a thread of its own (the default; exporter-registry.ts says why), or from this
   * thread, which saves the thread's memory (~25–35 MiB RSS) and costs the serving code CPU. The benchmark
   * (loadtest/tracing-bench.ts) compares the two.
   */
  exportThread?: boolean;
  /**
   * Receives the SDK's own warnings and errors (a failed export, a dropped span): the SDK never
   * throws into the application, so without this they are silent. Typically a pino logger's warn.
   */
  onDiagnostic?: (level: 'warn' | 'error', message: string) => void;
}

/** A running (or no-op) telemetry setup. */
export interface TelemetryHandle extends AsyncDisposable {
  /** True when an SDK was started (tracing.enabled). */
  readonly enabled: boolean;
  /**
   * Flushes spans still queued in the batch processor to the exporter, stops the SDK and
   * unregisters the global tracer provider, context manager and propagator. Idempotent; never
   * rejects (a failed final export is reported to onDiagnostic).
   */
  shutdown(): Promise<void>;
}

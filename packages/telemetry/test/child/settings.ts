// Shared by the child processes the telemetry tests spawn: they get their settings from the environment.
import { validateConfig } from '@tiergate/config';
import type { StartTelemetryOptions, TelemetrySettings, Tier } from '../../src/index.ts';

/** The `telemetry` section built from TG_TELEMETRY (JSON), through the real schema and its defaults. */
export function settingsFromEnv(): TelemetrySettings {
  return validateConfig({ version: 1, telemetry: JSON.parse(process.env.TG_TELEMETRY ?? '{}') }).telemetry;
}

export function optionsFromEnv(): StartTelemetryOptions {
  return {
    tier: (process.env.TG_TIER ?? 'proxy') as Tier,
    version: '9.9.9-test',
    ...(process.env.TG_INSTANCE ? { instanceId: process.env.TG_INSTANCE } : {}),
    onDiagnostic: (level, message) => process.stderr.write(`otel ${level}: ${message}\n`),
  };
}

import { readFileSync } from 'node:fs';
import { parseConfig } from '@tiergate/config';
import { describe, expect, it } from 'vitest';
import { DEFAULT_STACK_CONFIG, tracingLine } from './run-local-stack.ts';

describe("tiergate up's tracing line", () => {
  it('says tracing is off in the quick-start file and how to turn it on', () => {
    const config = parseConfig(readFileSync(DEFAULT_STACK_CONFIG, 'utf8'));
    expect(tracingLine(config.telemetry)).toMatch(/^off \(telemetry\.tracing\.enabled: true .*docs\/telemetry\.md\)$/);
  });

  it('names the endpoint, the services and the ratio when the file turns it on', () => {
    const config = parseConfig(
      'version: 1\ntelemetry:\n  service_name: demo\n  tracing: { enabled: true, endpoint: "http://127.0.0.1:4318", sampling_ratio: 0.5 }\n',
    );
    expect(tracingLine(config.telemetry, {})).toBe(
      'OTLP to http://127.0.0.1:4318/v1/traces as demo-proxy and demo-app (sampling ratio 0.5)',
    );
  });

  it('without an endpoint in the file, names the one OTEL_EXPORTER_OTLP_ENDPOINT gives the children', () => {
    const config = parseConfig('version: 1\ntelemetry:\n  tracing: { enabled: true }\n');
    expect(tracingLine(config.telemetry, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toMatch(
      /^OTLP to http:\/\/collector:4318\/v1\/traces as /,
    );
    expect(tracingLine(config.telemetry, {})).toMatch(/^OTLP to http:\/\/127\.0\.0\.1:4318\/v1\/traces as /);
  });
});

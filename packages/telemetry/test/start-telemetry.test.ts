import { trace } from '@opentelemetry/api';
import { validateConfig } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import { startOtlpReceiver } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { logContext, otlpTracesUrl, resourceAttributes, startTelemetry, type TelemetrySettings } from '../src/index.ts';
import { LightSpan } from '../src/sdk/light-tracer.ts';

const settings = (tracing: Record<string, unknown>, rest: Record<string, unknown> = {}): TelemetrySettings =>
  validateConfig({ version: 1, telemetry: { tracing, ...rest } }).telemetry;

describe('resourceAttributes', () => {
  const facts = { hostname: 'h1', defaultInstanceId: 'uuid-1' };

  it('names the service <service_name>-<tier> and fills host, instance, version and tier', () => {
    expect(resourceAttributes(settings({}, { service_name: 'edge' }), { tier: 'proxy', version: '1.2.3' }, facts)).toEqual({
      'service.name': 'edge-proxy',
      'service.version': '1.2.3',
      'service.instance.id': 'uuid-1',
      'host.name': 'h1',
      'tiergate.tier': 'proxy',
    });
  });

  it('lets config attributes override defaults, and explicit options and the tier override config', () => {
    const s = settings({ resource_attributes: { 'service.name': 'from-config', 'host.name': 'h2', 'tiergate.tier': 'lie', team: 'net' } });
    expect(resourceAttributes(s, { tier: 'app', version: '1' }, facts)).toMatchObject({
      'service.name': 'from-config',
      'host.name': 'h2',
      'tiergate.tier': 'app',
      team: 'net',
    });
    expect(resourceAttributes(s, { tier: 'app', version: '1', serviceName: 'shop', instanceId: 'i-9' }, facts)).toMatchObject({
      'service.name': 'shop',
      'service.instance.id': 'i-9',
    });
  });
});

describe('otlpTracesUrl', () => {
  it('appends /v1/traces to a base endpoint and keeps a full one', () => {
    expect(otlpTracesUrl('http://127.0.0.1:4318')).toBe('http://127.0.0.1:4318/v1/traces');
    expect(otlpTracesUrl('http://jaeger:4318/')).toBe('http://jaeger:4318/v1/traces');
    expect(otlpTracesUrl('https://c.example/otlp/v1/traces')).toBe('https://c.example/otlp/v1/traces');
  });
});

describe('startTelemetry in-process', () => {
  it('with tracing off returns a no-op handle; spans are not recorded', async () => {
    const handle = await startTelemetry(settings({ enabled: false }), { tier: 'proxy', version: '1' });
    expect(handle.enabled).toBe(false);
    expect(trace.getTracer('t').startSpan('x').isRecording()).toBe(false);
    await handle.shutdown();
  });

  it('refuses grpc with TG_TELEMETRY_SETUP and leaves nothing registered', async () => {
    const err = await startTelemetry(settings({ enabled: true, protocol: 'grpc' }), { tier: 'proxy', version: '1' }).catch((e) => e);
    expect(isTgError(err, 'TG_TELEMETRY_SETUP')).toBe(true);
    expect(err.message).toMatch(/grpc.*http\/protobuf/);
    expect(trace.getTracer('t').startSpan('x').isRecording()).toBe(false);
  });

  it('refuses a second start, flushes on shutdown (idempotent), and can start again afterwards', async () => {
    await using receiver = await startOtlpReceiver();
    const on = settings({ enabled: true, endpoint: receiver.url });
    const first = await startTelemetry(on, { tier: 'director', version: '1' });
    const again = await startTelemetry(on, { tier: 'director', version: '1' }).catch((e) => e);
    expect(isTgError(again, 'TG_TELEMETRY_SETUP')).toBe(true);

    trace.getTracer('t').startActiveSpan('first', (span) => {
      // http/protobuf (the default): spans record straight into the encoder, not through SDK span objects.
      expect(span).toBeInstanceOf(LightSpan);
      expect(logContext()).toEqual({ trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId, trace_flags: '01' });
      span.end();
    });
    expect(receiver.spans()).toEqual([]); // still queued in the batch processor
    await first.shutdown();
    await first.shutdown();
    expect(receiver.spans().map((s) => [s.name, s.resource['tiergate.tier']])).toEqual([['first', 'director']]);
    expect(trace.getTracer('t').startSpan('x').isRecording()).toBe(false);

    await using second = await startTelemetry(on, { tier: 'director', version: '1' });
    trace.getTracer('t').startSpan('second').end();
    await second.shutdown();
    expect(receiver.spans().map((s) => s.name)).toEqual(['first', 'second']);
  });

  it('exportThread: false exports http/protobuf from this thread, with the same bytes on the wire', async () => {
    await using receiver = await startOtlpReceiver();
    const handle = await startTelemetry(settings({ enabled: true, endpoint: receiver.url }), {
      tier: 'proxy',
      version: '1',
      exportThread: false,
    });
    trace.getTracer('t').startSpan('inline').end();
    await handle.shutdown();
    expect(receiver.spans().map((s) => [s.name, s.encoding])).toEqual([['inline', 'protobuf']]);
  });

  it('a collector that is down does not make shutdown reject; onDiagnostic hears about it', async () => {
    const receiver = await startOtlpReceiver();
    const deadUrl = receiver.url;
    await receiver.close();
    const heard: string[] = [];
    const handle = await startTelemetry(settings({ enabled: true, endpoint: deadUrl }), {
      tier: 'proxy',
      version: '1',
      exportTimeoutMs: 300, // retries of a refused connection stop here instead of after 10 s
      onDiagnostic: (level, message) => heard.push(`${level}: ${message}`),
    });
    trace.getTracer('t').startSpan('lost').end();
    await expect(handle.shutdown()).resolves.toBeUndefined();
    expect(heard.join('\n')).toMatch(/^error: exporting 1 span failed: .*ECONNREFUSED/m);
  });

  it('with http/json, a failed final flush is reported as such (the SDK batch processor rejects it)', async () => {
    const receiver = await startOtlpReceiver();
    const deadUrl = receiver.url;
    await receiver.close();
    const heard: string[] = [];
    const handle = await startTelemetry(settings({ enabled: true, endpoint: deadUrl, protocol: 'http/json' }), {
      tier: 'proxy',
      version: '1',
      exportTimeoutMs: 300,
      onDiagnostic: (level, message) => heard.push(`${level}: ${message}`),
    });
    const span = trace.getTracer('t').startSpan('lost');
    expect(span).not.toBeInstanceOf(LightSpan); // http/json keeps the SDK's spans and batch processor
    span.end();
    await expect(handle.shutdown()).resolves.toBeUndefined();
    expect(heard.join('\n')).toMatch(/^error: flushing spans at shutdown failed: /m);
  });
});

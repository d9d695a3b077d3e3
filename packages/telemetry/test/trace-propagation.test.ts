import { hostname } from 'node:os';
import { type CollectedSpan, startOtlpReceiver } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { lastJson, runChild, startChild, tracingOn } from './spawn-child.ts';

interface ProxyReport {
  traceId: string;
  serverSpanId: string;
  clientSpanId: string;
  headers: Record<string, string>;
  upstream: { traceparent: string; baggage: string; spanId: string } | undefined;
  inServer: Record<string, string>;
  outside: Record<string, string>;
}

const find = (spans: CollectedSpan[], name: string): CollectedSpan => {
  const span = spans.find((s) => s.name === name);
  if (!span) throw new Error(`no span '${name}' among ${spans.map((s) => s.name).join(', ')}`);
  return span;
};

describe('one trace across two processes', () => {
  it('proxy SERVER → CLIENT → app SERVER share one trace id with correct parents and resources (http/protobuf)', async () => {
    await using receiver = await startOtlpReceiver();
    const telemetry = tracingOn(receiver.url, { resource_attributes: { 'deployment.environment.name': 'test' } });
    await using app = await startChild('app-child.ts', { TG_TELEMETRY: telemetry, TG_TIER: 'app', TG_INSTANCE: 'app-1' });
    const target = app.firstLine.replace(/^listening /, '');
    const proxy = lastJson<ProxyReport>(
      await runChild('proxy-child.ts', { TG_TELEMETRY: telemetry, TG_TIER: 'proxy', TG_INSTANCE: 'proxy-1', TG_TARGET: target }),
    );
    expect((await app.exited).code).toBe(0); // the app flushed and exited after its one request

    const spans = receiver.spans();
    expect(spans.map((s) => s.name).sort()).toEqual(['GET /hello', 'HTTP GET', 'upstream GET']);
    const server = find(spans, 'HTTP GET');
    const client = find(spans, 'upstream GET');
    const appSpan = find(spans, 'GET /hello');
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([proxy.traceId]));
    expect(server).toMatchObject({ kind: 'SERVER', parentSpanId: undefined, spanId: proxy.serverSpanId, encoding: 'protobuf' });
    expect(client).toMatchObject({ kind: 'CLIENT', parentSpanId: server.spanId, spanId: proxy.clientSpanId });
    expect(appSpan).toMatchObject({ kind: 'SERVER', parentSpanId: client.spanId, spanId: proxy.upstream?.spanId });
    expect(appSpan.attributes['test.baggage']).toBe('carried'); // W3C baggage crossed the wire too
    expect(proxy.upstream?.traceparent).toBe(`00-${proxy.traceId}-${proxy.clientSpanId}-01`);

    for (const [span, tier, instance] of [
      [server, 'proxy', 'proxy-1'],
      [appSpan, 'app', 'app-1'],
    ] as const) {
      expect(span.serviceName).toBe(`tiergate-${tier}`);
      expect(span.resource).toMatchObject({
        'service.name': `tiergate-${tier}`,
        'service.instance.id': instance,
        'service.version': '9.9.9-test',
        'host.name': hostname(),
        'tiergate.tier': tier,
        'deployment.environment.name': 'test',
      });
    }
    // logContext() is the active span's ids inside it and empty outside any span.
    expect(proxy.inServer).toEqual({ trace_id: proxy.traceId, span_id: proxy.serverSpanId, trace_flags: '01' });
    expect(proxy.outside).toEqual({});
  });

  it('exports with protocol http/json as well', async () => {
    await using receiver = await startOtlpReceiver();
    const report = lastJson<ProxyReport>(
      await runChild('proxy-child.ts', { TG_TELEMETRY: tracingOn(receiver.url, { protocol: 'http/json' }), TG_TIER: 'proxy' }),
    );
    const spans = receiver.spans();
    expect(spans.map((s) => [s.name, s.encoding, s.traceId])).toEqual([
      ['upstream GET', 'json', report.traceId],
      ['HTTP GET', 'json', report.traceId],
    ]);
    expect(find(spans, 'upstream GET').parentSpanId).toBe(report.serverSpanId);
    expect(find(spans, 'HTTP GET').resource['tiergate.tier']).toBe('proxy');
  });
});

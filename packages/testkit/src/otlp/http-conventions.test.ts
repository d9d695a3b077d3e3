import { describe, expect, it } from 'vitest';
import type { CollectedSpan } from './collect-spans.ts';
import { httpConventionViolations } from './http-conventions.ts';

const span = (kind: 'SERVER' | 'CLIENT', name: string, attributes: Record<string, string | number>, error = false): CollectedSpan => ({
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  parentSpanId: undefined,
  name,
  kind,
  attributes,
  resource: {},
  serviceName: 'svc',
  scope: 'test',
  status: { code: error ? 'ERROR' : 'UNSET', message: undefined },
  startTimeUnixNano: '1',
  endTimeUnixNano: '2',
  encoding: 'protobuf',
});

const server = {
  'http.request.method': 'GET',
  'url.path': '/api/x',
  'url.scheme': 'http',
  'http.route': '/api',
  'client.address': '10.0.0.1',
  'network.protocol.version': '1.1',
  'server.address': 'shop.example',
  'server.port': 80,
  'user_agent.original': 'curl/8',
};
const client = {
  'http.request.method': 'GET',
  'server.address': '10.0.1.1',
  'server.port': 8080,
  'url.full': 'http://10.0.1.1:8080/api/x',
  'network.protocol.version': '1.1',
};

describe('httpConventionViolations (the HTTP span conventions as a table)', () => {
  it('accepts conforming SERVER and CLIENT spans', () => {
    expect(httpConventionViolations(span('SERVER', 'GET /api', server))).toEqual([]);
    expect(httpConventionViolations(span('CLIENT', 'GET', client))).toEqual([]);
    const { 'user_agent.original': _, ...noAgent } = server;
    expect(httpConventionViolations(span('SERVER', 'GET /api', noAgent), ['user_agent.original'])).toEqual([]);
  });

  it('reports the old names, missing attributes, a query, _OTHER without the original, ERROR without error.type', () => {
    expect(httpConventionViolations(span('SERVER', 'HTTP GET', server))).toEqual(["SERVER 'HTTP GET': name should be 'GET /api'"]);
    const { 'url.full': _, ...noUrl } = client;
    expect(httpConventionViolations(span('CLIENT', 'upstream GET', noUrl))).toEqual([
      "CLIENT 'upstream GET': required url.full missing",
      "CLIENT 'upstream GET': name should be 'GET'",
    ]);
    expect(httpConventionViolations(span('SERVER', 'GET /api', { ...server, 'url.path': '/api?token=1' }))).toEqual([
      "SERVER 'GET /api': url.path carries a query",
    ]);
    expect(httpConventionViolations(span('CLIENT', 'HTTP', { ...client, 'http.request.method': '_OTHER' }), [])).toEqual([
      "CLIENT 'HTTP': http.request.method _OTHER without http.request.method_original, or not a known method",
    ]);
    expect(httpConventionViolations(span('CLIENT', 'GET', client, true))).toEqual(["CLIENT 'GET': ERROR status without error.type"]);
  });
});

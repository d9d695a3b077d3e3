import { errors } from 'undici';
import { describe, expect, it } from 'vitest';
import { classifyUpstreamError } from '../src/upstream-error.ts';

describe('classifyUpstreamError', () => {
  it("undici's refusals of the request are the request's fault: 400, not counted against the server", () => {
    for (const err of [
      new errors.InvalidArgumentError('invalid host header'),
      new errors.NotSupportedError('expect header not supported'),
      new errors.RequestContentLengthMismatchError(),
    ]) {
      expect(classifyUpstreamError(err), err.code).toMatchObject({ code: 'TG_PROXY_BAD_REQUEST', serverFault: false });
    }
  });

  it('connect, timeout, reset and other errors are the server’s', () => {
    const cases: [Error, string][] = [
      [new errors.ConnectTimeoutError(), 'TG_PROXY_UPSTREAM_CONNECT_TIMEOUT'],
      [new errors.HeadersTimeoutError(), 'TG_PROXY_UPSTREAM_TIMEOUT'],
      [Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 'TG_PROXY_UPSTREAM_CONNECT'],
      [new errors.SocketError('other side closed'), 'TG_PROXY_UPSTREAM_RESET'],
      [new errors.ResponseContentLengthMismatchError(), 'TG_PROXY_UPSTREAM_ERROR'],
    ];
    for (const [err, code] of cases) expect(classifyUpstreamError(err), code).toMatchObject({ code, serverFault: true });
  });
});

import { describe, expect, it } from 'vitest';
import { PROXY_V8_FLAGS, proxyExecArgv } from '../src/proxy-runtime/v8-flags.ts';

describe('proxyExecArgv', () => {
  it('adds the proxy V8 flags to the primary execArgv', () => {
    expect(proxyExecArgv(['--enable-source-maps'], undefined)).toEqual(['--enable-source-maps', ...PROXY_V8_FLAGS]);
  });

  it('keeps a semi-space size the operator chose on the command line or in NODE_OPTIONS', () => {
    expect(proxyExecArgv(['--max-semi-space-size=16'], undefined)).toEqual(['--max-semi-space-size=16']);
    expect(proxyExecArgv(['--max_semi_space_size=2'], undefined)).toEqual(['--max_semi_space_size=2']);
    expect(proxyExecArgv([], '--no-warnings  --max-semi-space-size=16')).toEqual([]);
  });
});

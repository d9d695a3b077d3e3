import { describe, expect, it } from 'vitest';
import { PROXY_V8_FLAGS, workerExecArgv } from '../src/proxy-runtime/primary.ts';

describe('workerExecArgv', () => {
  it('adds the proxy V8 flags to the primary execArgv', () => {
    expect(workerExecArgv(['--enable-source-maps'], undefined)).toEqual(['--enable-source-maps', ...PROXY_V8_FLAGS]);
  });

  it('keeps a semi-space size the operator chose on the command line or in NODE_OPTIONS', () => {
    expect(workerExecArgv(['--max-semi-space-size=16'], undefined)).toEqual(['--max-semi-space-size=16']);
    expect(workerExecArgv(['--max_semi_space_size=2'], undefined)).toEqual(['--max_semi_space_size=2']);
    expect(workerExecArgv([], '--no-warnings  --max-semi-space-size=16')).toEqual([]);
  });
});

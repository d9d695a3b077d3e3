import { describe, expect, it } from 'vitest';
import { PROXY_V8_FLAGS, proxyExecArgv } from '../src/proxy-runtime/v8-flags.ts';

describe('proxyExecArgv', () => {
  it('adds the proxy V8 flags to the primary execArgv', () => {
    expect(proxyExecArgv(['--enable-source-maps'], undefined)).toEqual(['--enable-source-maps', ...PROXY_V8_FLAGS]);
  });

  it('keeps a flag the operator set on the command line or in NODE_OPTIONS, and adds the others', () => {
    const growing = '--heap-growing-percent=100';
    const pretenuring = '--no-allocation-site-pretenuring';
    const saver = ['--memory-saver-mode', '--min-semi-space-size=4'];
    expect(proxyExecArgv(['--max-semi-space-size=16'], undefined)).toEqual([
      '--max-semi-space-size=16',
      '--initial-old-space-size=40',
      growing,
      pretenuring,
      ...saver,
    ]);
    expect(proxyExecArgv(['--max_semi_space_size=2'], undefined)).toEqual([
      '--max_semi_space_size=2',
      '--initial-old-space-size=40',
      growing,
      pretenuring,
      ...saver,
    ]);
    expect(proxyExecArgv([], '--no-warnings  --max-semi-space-size=16')).toEqual([
      '--initial-old-space-size=40',
      growing,
      pretenuring,
      ...saver,
    ]);
    expect(proxyExecArgv(['--initial-old-space-size=64'], '--max-semi-space-size=16')).toEqual([
      '--initial-old-space-size=64',
      growing,
      pretenuring,
      ...saver,
    ]);
    expect(proxyExecArgv(['--heap_growing_percent=50'], undefined)).toEqual([
      '--heap_growing_percent=50',
      '--max-semi-space-size=4',
      '--initial-old-space-size=40',
      pretenuring,
      ...saver,
    ]);
    // Memory saver mode off, or a young generation that starts smaller: the operator's.
    expect(proxyExecArgv(['--no-memory-saver-mode', '--min_semi_space_size=1'], undefined)).toEqual([
      '--no-memory-saver-mode',
      '--min_semi_space_size=1',
      '--max-semi-space-size=4',
      '--initial-old-space-size=40',
      growing,
      pretenuring,
    ]);
  });

  it("keeps the operator's pretenuring either way it is spelled (V8 reads the last of --x and --no-x)", () => {
    const others = [
      '--max-semi-space-size=4',
      '--initial-old-space-size=40',
      '--heap-growing-percent=100',
      '--memory-saver-mode',
      '--min-semi-space-size=4',
    ];
    expect(proxyExecArgv(['--allocation-site-pretenuring'], undefined)).toEqual(['--allocation-site-pretenuring', ...others]);
    expect(proxyExecArgv(['--allocation_site_pretenuring'], undefined)).toEqual(['--allocation_site_pretenuring', ...others]);
    expect(proxyExecArgv(['--no-allocation-site-pretenuring'], undefined)).toEqual(['--no-allocation-site-pretenuring', ...others]);
  });
});

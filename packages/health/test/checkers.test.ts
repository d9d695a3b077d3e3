import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { CHECKERS, type CheckerSpec, createChecker, resolveTiming, type SpecOf } from '../src/index.ts';
import { closedPort, trackTimers } from './helpers.ts';

const CONNECT_SCRIPT = `require('node:net').connect(+process.env.TG_CHECK_PORT, process.env.TG_CHECK_HOST)
  .on('connect', () => process.exit(0)).on('error', (e) => { console.error(e.code); process.exit(1); });`;

/** One valid spec per registry entry; the shared suite below runs over all of them. */
const SPECS: { readonly [K in keyof typeof CHECKERS]: SpecOf<K> } = {
  tcp: { kind: 'tcp' },
  http: { kind: 'http', path: '/' },
  https: { kind: 'https', path: '/', rejectUnauthorized: false },
  // A real probe program: exits 0 only if it can connect to the target.
  command: { kind: 'command', argv: [process.execPath, '-e', CONNECT_SCRIPT] },
  grpc: { kind: 'grpc' },
};

const expectInvalid = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(isTgError(err, 'TG_CONFIG_INVALID'), String(err)).toBe(true);
    return;
  }
  expect.fail('expected TG_CONFIG_INVALID');
};

describe('checker registry', () => {
  it('has a spec for every entry of the registry (so the shared suite covers every checker)', () => {
    expect(Object.keys(SPECS).sort()).toEqual(Object.keys(CHECKERS).sort());
  });

  describe.each(Object.values(SPECS))('$kind checker', (spec) => {
    it('is built by createChecker with its kind', async () => {
      const checker = createChecker(spec);
      expect(checker.kind).toBe(spec.kind);
      await checker.close?.();
    });

    it('resolves (never rejects) with ok=false, a detail and a duration against a closed port', async () => {
      const checker = createChecker(spec);
      try {
        const r = await checker.check({ host: '127.0.0.1', port: await closedPort() }, 2000);
        expect(r.ok).toBe(false);
        expect(r.detail.length).toBeGreaterThan(0);
        expect(r.durationMs).toBeGreaterThanOrEqual(0);
      } finally {
        await checker.close?.();
      }
    });

    it('leaves no pending timer behind once a check resolved', async () => {
      const checker = createChecker(spec);
      try {
        const port = await closedPort();
        using timers = trackTimers();
        await checker.check({ host: '127.0.0.1', port }, 60_000);
        expect(await timers.pending()).toBe(0);
      } finally {
        await checker.close?.();
      }
    });

    it('resolves as aborted when the signal is already aborted', async () => {
      const checker = createChecker(spec);
      try {
        const r = await checker.check({ host: '127.0.0.1', port: await closedPort() }, 2000, AbortSignal.abort());
        expect(r).toMatchObject({ ok: false, detail: 'aborted' });
      } finally {
        await checker.close?.();
      }
    });
  });

  it('rejects an unknown kind and invalid specs with TG_CONFIG_INVALID', () => {
    expectInvalid(() => createChecker({ kind: 'smtp' } as unknown as CheckerSpec));
    expectInvalid(() => createChecker({ kind: 'toString' } as unknown as CheckerSpec));
    expectInvalid(() => createChecker({ kind: 'http', path: 'no-slash' }));
    expectInvalid(() => createChecker({ kind: 'http', path: '/', expectStatus: [[300, 200]] }));
    expectInvalid(() => createChecker({ kind: 'http', path: '/', expectStatus: [] }));
    expectInvalid(() => createChecker({ kind: 'http', path: '/', maxBodyBytes: 0 }));
    expectInvalid(() => createChecker({ kind: 'command', argv: [] }));
  });

  it('fills timing defaults and rejects impossible timing', () => {
    expect(resolveTiming({ rise: 1 })).toEqual({ intervalMs: 2000, timeoutMs: 1000, rise: 1, fall: 3, jitter: 0.1, initial: 'up' });
    expectInvalid(() => resolveTiming({ rise: 0 }));
    expectInvalid(() => resolveTiming({ fall: 1.5 }));
    expectInvalid(() => resolveTiming({ intervalMs: 0 }));
    expectInvalid(() => resolveTiming({ jitter: 1 }));
    expectInvalid(() => resolveTiming({ initial: 'maybe' as 'up' }));
  });
});

import { validateConfig } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import type { VirtualService } from '../src/desired.ts';
import { checkSpecOf } from '../src/real-server-health.ts';

const withCheck = (health_check: Record<string, unknown>) =>
  validateConfig({
    version: 1,
    virtual_services: [{ address: '10.0.0.100', port: 80, real_servers: [{ address: '10.0.0.11' }], health_check }],
  }).virtual_services[0] as VirtualService;

describe('checkSpecOf: command checks', () => {
  it('passes health_check.user on to the checker (keepalived MISC_CHECK user); absent, the checker picks nobody as root', () => {
    const spec = checkSpecOf(withCheck({ type: 'command', command: ['/usr/local/bin/check'], user: 'tg-check' }).health_check!);
    expect(spec).toMatchObject({ kind: 'command', argv: ['/usr/local/bin/check'], user: 'tg-check' });
    expect(checkSpecOf(withCheck({ type: 'command', command: ['/usr/local/bin/check'] }).health_check!)).not.toHaveProperty('user');
  });

  it('refuses user on a check that runs no command, and a value that is not a user name, naming the path', () => {
    for (const [hc, path] of [
      [{ type: 'tcp', user: 'nobody' }, "virtual_services[0].health_check.user: unknown key 'user'"],
      [{ type: 'command', command: ['true'], user: 'no body' }, 'virtual_services[0].health_check.user: expected a user name'],
    ] as const) {
      let err: unknown;
      try {
        withCheck(hc);
      } catch (e) {
        err = e;
      }
      expect(isTgError(err, 'TG_CONFIG_INVALID')).toBe(true);
      expect((err as Error).message).toContain(path);
    }
  });
});

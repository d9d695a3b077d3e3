import { readFileSync } from 'node:fs';
import { parseConfig } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { DEFAULT_STACK_CONFIG } from './run-local-stack.ts';
import { defaultPoolOf, isLoopbackHost, planStack } from './stack-plan.ts';

const base = (
  proxy: string,
  sessions = 'sessions:\n  redis: { url: "redis://127.0.0.1:6399" }\n  secrets: [a-development-secret-0001]\n',
) => parseConfig(`version: 1\nproxy:\n${proxy}${sessions}`);

const TWO_POOLS = `  listeners: [{ address: 127.0.0.1, port: 8080 }]
  routes:
    - { host: api.example, path: /, pool: api }
    - { path: /static, pool: api }
    - { path: /, pool: web }
  pools:
    api: { servers: [{ address: "127.0.0.1:9001" }] }
    web: { servers: [{ address: "127.0.0.1:9002" }, { address: "[::1]:9003" }] }
`;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isTgError(err) ? err.code : 'not a TgError';
  }
  return undefined;
}

describe('planStack', () => {
  it('plans the quick-start file: Redis on 6399, app-1/app-2 on 8081/8082, the proxy on 8080', () => {
    const config = parseConfig(readFileSync(DEFAULT_STACK_CONFIG, 'utf8'));
    expect(planStack(config, 'redis')).toEqual({
      store: 'redis',
      redis: { host: '127.0.0.1', port: 6399, password: undefined },
      pool: 'app',
      apps: [
        { instance: 'app-1', host: '127.0.0.1', port: 8081 },
        { instance: 'app-2', host: '127.0.0.1', port: 8082 },
      ],
      proxyUrls: ['http://127.0.0.1:8080'],
      adminUrl: 'http://127.0.0.1:9901',
    });
  });

  it('starts no Redis for --store memory, the same apps and proxy', () => {
    const config = parseConfig(readFileSync(DEFAULT_STACK_CONFIG, 'utf8'));
    const plan = planStack(config, 'memory');
    expect(plan.redis).toBeUndefined();
    expect(plan.apps.map((a) => a.port)).toEqual([8081, 8082]);
  });

  it('uses the pool of the host-less route for /, not the first route', () => {
    const config = base(TWO_POOLS);
    expect(defaultPoolOf(config.proxy!)).toBe('web');
    expect(planStack(config, 'redis').apps).toEqual([
      { instance: 'app-1', host: '127.0.0.1', port: 9002 },
      { instance: 'app-2', host: '::1', port: 9003 },
    ]);
  });

  it('takes the Redis password from the URL so the server it starts requires it', () => {
    const sessions = 'sessions:\n  redis: { url: "redis://:s%40cret@localhost:7000" }\n  secrets: [a-development-secret-0001]\n';
    const plan = planStack(base(TWO_POOLS, sessions), 'redis');
    expect(plan.redis).toEqual({ host: 'localhost', port: 7000, password: 's@cret' });
  });

  it('leaves a remote Redis alone (the apps connect to it; nothing to start)', () => {
    const sessions = 'sessions:\n  redis: { url: "redis://10.0.0.5:6379" }\n  secrets: [a-development-secret-0001]\n';
    expect(planStack(base(TWO_POOLS, sessions), 'redis').redis).toBeUndefined();
  });

  it('rejects what cannot run on loopback, with TG_CONFIG_INVALID', () => {
    const remoteApp = TWO_POOLS.replace('127.0.0.1:9002', '10.0.0.7:9002');
    expect(codeOf(() => planStack(base(remoteApp), 'redis'))).toBe('TG_CONFIG_INVALID');
    const publicListener = TWO_POOLS.replace('address: 127.0.0.1, port: 8080', 'address: 0.0.0.0, port: 8080');
    expect(codeOf(() => planStack(base(publicListener), 'redis'))).toBe('TG_CONFIG_INVALID');
    const noRoot = TWO_POOLS.replace('    - { path: /, pool: web }\n', '');
    expect(codeOf(() => planStack(base(noRoot), 'redis'))).toBe('TG_CONFIG_INVALID');
    expect(codeOf(() => planStack(base(TWO_POOLS, ''), 'redis'))).toBe('TG_CONFIG_INVALID');
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['::1', true],
    ['[::1]', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['10.0.0.1', false],
    ['::', false],
    ['127.example.com', false],
  ])('%s → %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

import { isTgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { startRedis } from './redis-server.ts';
import { startSentinelSetup } from './sentinel-setup.ts';

describe('startRedis', () => {
  it('starts a real server, stops it, and restarts it on the same port', async () => {
    await using redis = await startRedis();
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(redis.pid).toBeGreaterThan(0);
    const client = redis.client();
    client.on('error', () => {});
    try {
      await client.set('k', 'v');
      expect(await client.get('k')).toBe('v');
      expect(await client.config('GET', 'save')).toEqual(['save', '']);
      const port = redis.port;
      await redis.stop();
      expect(redis.pid).toBeUndefined();
      await redis.restart();
      expect(redis.port).toBe(port);
      // Nothing is persisted, so the restarted server is empty.
      const fresh = redis.client();
      expect(await fresh.get('k')).toBeNull();
      fresh.disconnect();
    } finally {
      client.disconnect();
    }
  });

  it('reports a port in use with the server log', async () => {
    await using first = await startRedis();
    const err = await startRedis({ port: first.port }).catch((e: unknown) => e);
    expect(isTgError(err, 'TG_STACK_START_FAILED')).toBe(true);
    expect((err as Error).message).toContain('Address already in use');
  });

  it('throws TG_STACK_MISSING_BINARY for a missing binary', async () => {
    const err = await startRedis({ binary: '/nonexistent/redis-server' }).catch((e: unknown) => e);
    expect(isTgError(err, 'TG_STACK_MISSING_BINARY')).toBe(true);
  });
});

describe('startSentinelSetup', () => {
  it('promotes the replica after the master is killed', async () => {
    await using setup = await startSentinelSetup();
    expect(await setup.currentMaster()).toEqual({ host: '127.0.0.1', port: setup.master.port });
    await setup.killMaster();
    expect(await setup.waitForFailover()).toEqual({ host: '127.0.0.1', port: setup.replica.port });
  });
});

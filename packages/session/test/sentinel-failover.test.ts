import { setTimeout as sleep } from 'node:timers/promises';
import { startSentinelSetup } from '@tiergate/testkit';
import { expect, it } from 'vitest';
import { encodeSession, RedisSessionStore } from '../src/index.ts';

/** Retries `work` until it succeeds; errors while the failover is in progress are expected. */
async function eventually<T>(work: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await work();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

it('keeps sessions written before a Sentinel failover readable and writable after it', async () => {
  await using setup = await startSentinelSetup();
  const store = new RedisSessionStore({ mode: 'sentinel', sentinels: setup.sentinels, name: setup.name });
  try {
    await store.ready();
    for (let i = 0; i < 20; i++) await store.set(`s${i}`, { set: encodeSession({ user: `u${i}` }), delete: [] });
    // Only writes the replica has are kept by a promotion (replication is asynchronous).
    await setup.waitForReplicaSync();
    await setup.killMaster();
    await setup.waitForFailover();

    const after = await eventually(() => store.get('s7'));
    expect({ ...after }).toEqual({ user: '"u7"' });
    for (let i = 0; i < 20; i++) expect({ ...(await eventually(() => store.get(`s${i}`))) }).toEqual({ user: `"u${i}"` });
    await eventually(() => store.set('s0', { set: encodeSession({ cart: ['book'] }), delete: [] }));
    expect({ ...(await store.get('s0')) }).toEqual({ user: '"u0"', cart: '["book"]' });
  } finally {
    await store.close();
  }
});

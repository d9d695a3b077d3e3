import { startRedisCluster } from '@tiergate/testkit';
import { expect, it } from 'vitest';
import { encodeSession, RedisSessionStore } from '../src/index.ts';

it('stores sessions across the slots of a real Redis Cluster, the patch script running on each node', async () => {
  await using cluster = await startRedisCluster();
  const store = new RedisSessionStore({ mode: 'cluster', nodes: cluster.addresses });
  try {
    await store.ready();
    const ids = Array.from({ length: 30 }, (_, i) => `cluster-${i}`);
    for (const id of ids) await store.set(id, { set: encodeSession({ user: id, n: 1 }), delete: [] });
    for (const id of ids) await store.set(id, { set: encodeSession({ n: 2 }), delete: ['user'] });
    for (const id of ids) expect({ ...(await store.get(id)) }).toEqual({ n: '2' });
    // The keys really are spread over the nodes (30 keys on 3 nodes land on more than one).
    const counts = await Promise.all(
      cluster.nodes.map(async (node) => {
        const client = node.client();
        try {
          return await client.dbsize();
        } finally {
          client.disconnect();
        }
      }),
    );
    expect(counts.reduce((a, b) => a + b, 0)).toBe(30);
    expect(counts.filter((c) => c > 0).length).toBeGreaterThan(1);
  } finally {
    await store.close();
  }
});

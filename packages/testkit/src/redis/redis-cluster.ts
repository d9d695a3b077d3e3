import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { TgError } from '@tiergate/errors';
import { freePort } from './free-port.ts';
import { type RedisServer, startRedis } from './redis-server.ts';

const REDIS_CLI = '/usr/bin/redis-cli';

/** A Redis Cluster of masters without replicas on loopback, disposable with `await using`. */
export interface RedisCluster extends AsyncDisposable {
  readonly nodes: readonly RedisServer[];
  /** The node addresses, in the shape ioredis' Cluster takes. */
  readonly addresses: { host: string; port: number }[];
}

/**
 * Starts `masters` (default 3, the minimum Redis accepts) cluster-enabled servers, joins them with
 * `redis-cli --cluster create` (the documented way) and resolves once every node reports
 * cluster_state:ok. Bus ports are chosen explicitly (`--cluster-port`) because port+10000 may be
 * taken or above 65535.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  if (!existsSync(REDIS_CLI)) throw new TgError('TG_STACK_MISSING_BINARY', `redis-cli not found at ${REDIS_CLI}: install redis-tools`);
  const nodes: RedisServer[] = [];
  const dispose = async () => {
    for (const node of nodes.splice(0).reverse()) await node[Symbol.asyncDispose]();
  };
  try {
    for (let i = 0; i < masters; i++) {
      const busPort = await freePort();
      const args = ['--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-node-timeout', '2000'];
      nodes.push(await startRedis({ args: [...args, '--cluster-config-file', 'nodes.conf'] }));
    }
    const addresses = nodes.map((n) => `${n.host}:${n.port}`);
    await promisify(execFile)(REDIS_CLI, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: 20_000,
    });
    await waitForClusterOk(nodes, 20_000);
    return {
      nodes,
      addresses: nodes.map((n) => ({ host: n.host, port: n.port })),
      [Symbol.asyncDispose]: dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

async function waitForClusterOk(nodes: readonly RedisServer[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const states = await Promise.all(
      nodes.map(async (node) => {
        const client = node.client();
        client.on('error', () => {});
        try {
          return String(await client.call('CLUSTER', 'INFO')).includes('cluster_state:ok');
        } catch {
          return false;
        } finally {
          client.disconnect();
        }
      }),
    );
    if (states.every(Boolean)) return;
    await sleep(100);
  }
  throw new TgError('TG_STACK_START_FAILED', `the Redis cluster did not reach cluster_state:ok within ${timeoutMs} ms`);
}

import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { type RedisServer, startRedis } from './redis-server.ts';

export interface SentinelAddress {
  host: string;
  port: number;
}

/** A master, one replica and one Sentinel (quorum 1) on loopback, disposable with `await using`. */
export interface SentinelSetup extends AsyncDisposable {
  /** The monitored master's name, for clients (`name` in ioredis' sentinel options). */
  readonly name: string;
  readonly master: RedisServer;
  readonly replica: RedisServer;
  readonly sentinel: RedisServer;
  /** The Sentinel addresses, in the shape ioredis' `sentinels` option takes. */
  readonly sentinels: SentinelAddress[];
  /** The master address Sentinel currently reports. */
  currentMaster(): Promise<SentinelAddress>;
  /** Resolves once the replica has processed every write the master has (offsets equal). */
  waitForReplicaSync(timeoutMs?: number): Promise<void>;
  /** SIGKILLs the master: a crash, as Sentinel sees it. */
  killMaster(): Promise<void>;
  /** Resolves once Sentinel reports the replica as master and the replica answers ROLE as master. */
  waitForFailover(timeoutMs?: number): Promise<SentinelAddress>;
}

const NAME = 'tgmaster';

/**
 * Starts master → replica → Sentinel, in that order so that Sentinel's first INFO to the master already
 * lists the replica (otherwise it would learn of it only at the next 10 s INFO round), and resolves once
 * Sentinel sees the replica as healthy. down-after is 1 s so a failover completes in a few seconds.
 */
export async function startSentinelSetup(): Promise<SentinelSetup> {
  const started: RedisServer[] = [];
  const disposeAll = async () => {
    for (const server of started.reverse()) await server[Symbol.asyncDispose]();
  };
  try {
    const master = await startRedis({ args: ['--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'] });
    started.push(master);
    const replica = await startRedis({ args: ['--replicaof', master.host, String(master.port)] });
    started.push(replica);
    await waitForReplicaSync(master, replica, 15_000);
    const sentinel = await startRedis({ sentinelConfig: sentinelConfig(master) });
    started.push(sentinel);
    await waitForSentinelToSeeReplica(sentinel, 15_000);
    return makeSetup(master, replica, sentinel, disposeAll);
  } catch (err) {
    await disposeAll();
    throw err;
  }
}

function sentinelConfig(master: RedisServer): string {
  return [
    `sentinel monitor ${NAME} ${master.host} ${master.port} 1`,
    `sentinel down-after-milliseconds ${NAME} 1000`,
    `sentinel failover-timeout ${NAME} 5000`,
    `sentinel parallel-syncs ${NAME} 1`,
    '',
  ].join('\n');
}

function makeSetup(master: RedisServer, replica: RedisServer, sentinel: RedisServer, dispose: () => Promise<void>): SentinelSetup {
  return {
    name: NAME,
    master,
    replica,
    sentinel,
    sentinels: [{ host: sentinel.host, port: sentinel.port }],
    currentMaster: () => withClient(sentinel, (c) => masterAddress(c)),
    waitForReplicaSync: (timeoutMs = 15_000) => waitForReplicaSync(master, replica, timeoutMs),
    killMaster: () => master.kill(),
    waitForFailover: (timeoutMs = 20_000) =>
      until(timeoutMs, `Sentinel to promote the replica on port ${replica.port}`, async () => {
        const address = await withClient(sentinel, (c) => masterAddress(c));
        if (address.port !== replica.port) return undefined;
        const role = (await withClient(replica, (c) => c.call('ROLE'))) as unknown[];
        return role[0] === 'master' ? address : undefined;
      }),
    [Symbol.asyncDispose]: dispose,
  };
}

async function waitForReplicaSync(master: RedisServer, replica: RedisServer, timeoutMs: number): Promise<void> {
  await until(timeoutMs, 'the replica to catch up with the master', async () => {
    const masterOffset = infoField(await withClient(master, (c) => c.info('replication')), 'master_repl_offset');
    const replicaInfo = await withClient(replica, (c) => c.info('replication'));
    const applied = infoField(replicaInfo, 'slave_repl_offset');
    return replicaInfo.includes('master_link_status:up') && applied >= masterOffset ? true : undefined;
  });
}

async function masterAddress(client: Redis): Promise<SentinelAddress> {
  const [host, port] = (await client.call('SENTINEL', 'get-master-addr-by-name', NAME)) as [string, string];
  return { host, port: Number(port) };
}

async function waitForSentinelToSeeReplica(sentinel: RedisServer, timeoutMs: number): Promise<void> {
  await until(timeoutMs, 'Sentinel to discover the replica', async () => {
    const replicas = (await withClient(sentinel, (c) => c.call('SENTINEL', 'replicas', NAME))) as string[][];
    const healthy = replicas.some((fields) => {
      const map = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
      return map.get('flags') === 'slave' && map.get('master-link-status') === 'ok';
    });
    return healthy ? true : undefined;
  });
}

function infoField(info: string, field: string): number {
  const match = new RegExp(`^${field}:(\\d+)`, 'm').exec(info);
  return match ? Number(match[1]) : -1;
}

async function withClient<T>(server: RedisServer, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = server.client();
  client.on('error', () => {});
  try {
    return await use(client);
  } finally {
    client.disconnect();
  }
}

/** Polls `probe` until it returns a value other than undefined; errors count as "not yet". */
async function until<T>(timeoutMs: number, what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: last });
}

export { freePort } from './free-port.ts';
export { type RedisCluster, startRedisCluster } from './redis-cluster.ts';
export { REDIS_SERVER_BINARY, type RedisServer, type StartRedisOptions, startRedis } from './redis-server.ts';
export { type SentinelAddress, type SentinelSetup, startSentinelSetup } from './sentinel-setup.ts';

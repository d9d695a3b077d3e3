import { type Balancer, compileKeyTemplate, createBalancer, type KeyFunction, type ServerSpec, type ServerState } from '@tiergate/balancer';
import { type DeepReadonly, type PoolConfig, splitHostPort } from '@tiergate/config';
import { type HealthChange, HealthMonitor, type TargetHealth, targetKey } from '@tiergate/health';
import { Pool } from 'undici';
import { healthSpecOf } from './health-spec.ts';

/** The frozen pool section of the validated config. */
export type PoolSection = DeepReadonly<PoolConfig>;

/** Bits of `retries.on` (nginx proxy_next_upstream), tested per failure. */
export const NEXT = {
  error: 1,
  timeout: 2,
  http_500: 4,
  http_502: 8,
  http_503: 16,
  http_504: 32,
  http_429: 64,
  non_idempotent: 128,
} as const;

const STATUS_BIT: Readonly<Record<number, number>> = {
  500: NEXT.http_500,
  502: NEXT.http_502,
  503: NEXT.http_503,
  504: NEXT.http_504,
  429: NEXT.http_429,
};

/** The `retries.on` bit a response status stands for, or 0. */
export function statusBit(status: number): number {
  return STATUS_BIT[status] ?? 0;
}

/** One server of a pool with its undici connection pool. */
export interface Upstream {
  readonly address: string;
  readonly dispatcher: Pool;
}

/**
 * A pool at run time: the balancer, one undici Pool (keep-alive connections) per server, the retry
 * policy and, when configured, the active health monitor feeding `balancer.setHealthy`.
 */
export class UpstreamPool {
  readonly name: string;
  readonly balancer: Balancer;
  readonly upstreams: readonly Upstream[];
  /** `retries.on` as bits of NEXT. */
  readonly nextUpstream: number;
  /** Attempts per request, first included (nginx proxy_next_upstream_tries; 0 = servers). */
  readonly tries: number;
  readonly triesTimeoutMs: number;
  /** The compiled `hash_key` for the `hash` algorithm. */
  readonly hashKey: KeyFunction | undefined;
  /** keepalive.connections 0: `Connection: close` on every upstream request (nginx without `keepalive`). */
  readonly reset: boolean;
  readonly #monitor: HealthMonitor | undefined;
  readonly #now: () => number;

  constructor(name: string, config: PoolSection, random: () => number, now: () => number) {
    this.name = name;
    this.#now = now;
    const specs: ServerSpec[] = config.servers.map((s) => ({
      address: s.address,
      weight: s.weight,
      maxFails: s.max_fails,
      failTimeoutMs: s.fail_timeout,
      backup: s.backup,
      down: s.down,
      maxConns: s.max_conns,
      slowStartMs: s.slow_start,
    }));
    this.balancer = createBalancer(config.algorithm, specs, {
      random,
      consistent: config.consistent,
      ipHashWholeAddress: config.ip_hash_whole_address,
    });
    this.hashKey = config.algorithm === 'hash' ? compileKeyTemplate(config.hash_key ?? '$request_uri') : undefined;
    this.upstreams = config.servers.map((s) => ({ address: s.address, dispatcher: newDispatcher(s.address, config) }));
    this.nextUpstream = config.retries.on.reduce((bits, name) => bits | NEXT[name], 0);
    this.tries = config.retries.tries === 0 ? config.servers.length : config.retries.tries;
    this.triesTimeoutMs = config.retries.timeout;
    this.reset = config.keepalive.connections === 0;
    this.#monitor = config.health_check
      ? new HealthMonitor({
          spec: healthSpecOf(config.health_check),
          name: name,
          random,
          targets: config.servers.map((s) => splitHostPort(s.address)!),
          onChange: (change) => this.#onHealth(change),
        })
      : undefined;
  }

  /** Starts active health checks, if any. */
  start(): void {
    this.#monitor?.start();
  }

  #onHealth(change: HealthChange): void {
    const key = targetKey(change.target);
    const now = this.#now();
    this.upstreams.forEach((u, i) => {
      const hp = splitHostPort(u.address);
      if (hp && targetKey(hp) === key) this.balancer.setHealthy(i, change.healthy, now);
    });
  }

  /** Per-server state for the admin /status endpoint. */
  status(): { name: string; algorithm: string; servers: (ServerState & { address: string; check?: TargetHealth })[] } {
    const now = this.#now();
    const checks = this.#monitor?.status();
    return {
      name: this.name,
      algorithm: this.balancer.algorithm,
      servers: this.upstreams.map((u, i) => {
        const check = checks?.[i];
        return { address: u.address, ...this.balancer.state(i, now), ...(check ? { check } : {}) };
      }),
    };
  }

  /** Stops health checks and closes connections: gracefully, or at once with `force`. */
  async close(force: boolean): Promise<void> {
    await this.#monitor?.stop();
    await Promise.all(this.upstreams.map((u) => (force ? u.dispatcher.destroy() : u.dispatcher.close())));
  }
}

function newDispatcher(address: string, config: PoolSection): Pool {
  const t = config.timeouts;
  return new Pool(`http://${address}`, {
    connections: config.keepalive.max_connections === 0 ? null : config.keepalive.max_connections,
    pipelining: 1,
    keepAliveTimeout: config.keepalive.timeout,
    // The upstream's own Keep-Alive: timeout= hint may shorten but never lengthen ours.
    keepAliveMaxTimeout: config.keepalive.timeout,
    connect: { timeout: t.connect },
    headersTimeout: t.response_headers,
    bodyTimeout: t.idle,
  });
}

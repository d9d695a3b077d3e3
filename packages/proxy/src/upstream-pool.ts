import { isDeepStrictEqual } from 'node:util';
import { type Balancer, compileKeyTemplate, createBalancer, type KeyFunction, type ServerSpec, type ServerState } from '@tiergate/balancer';
import type { DeepReadonly, PoolConfig } from '@tiergate/config';
import { splitHostPort } from '@tiergate/config/runtime';
import { type TargetHealth, targetKey } from '@tiergate/health';
import { PoolHealth } from './pool-health.ts';
import { StickyCookies } from './sticky-cookie.ts';
import { Pool } from './undici-parts.ts';
import { type UpstreamProtocol, upstreamProtocol } from './upstream-h2.ts';

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

/**
 * An undici Pool (keep-alive connections to one server) shared by the pool generations that keep the
 * server with the same connection settings, closed when the last of them lets go.
 */
class SharedDispatcher {
  readonly key: string;
  readonly pool: Pool;
  holders = 0;
  #closed: Promise<void> | undefined;

  constructor(key: string, pool: Pool) {
    this.key = key;
    this.pool = pool;
  }

  /** Graceful: undici lets requests already dispatched finish. Idempotent. */
  close(force: boolean): Promise<void> {
    this.#closed ??= force ? this.pool.destroy() : this.pool.close();
    return this.#closed;
  }
}

/** One server of a pool with its undici connection pool. */
export interface Upstream {
  readonly address: string;
  readonly dispatcher: Pool;
  /** The TLS server name its requests name (undici `servername`; upstream-h2.ts), undefined in cleartext. */
  readonly servername: string | undefined;
}

/** Clock and randomness of the proxy. */
export interface PoolDeps {
  readonly random: () => number;
  readonly now: () => number;
}

/**
 * A pool at run time: the balancer, one undici Pool (keep-alive connections) per server, the retry
 * policy, sticky cookies and, when configured, the active health feeding `balancer.setHealthy`.
 *
 * Reload: a generation built from a `previous` one takes over its undici Pools for servers whose
 * address and connection settings are unchanged, and its health monitor when `health_check` is
 * unchanged. Requests hold the generation they started on (`acquire`/`release`); a `retire`d
 * generation lets go of what it shares once its last request is done.
 */
export class UpstreamPool {
  readonly name: string;
  readonly config: PoolSection;
  readonly balancer: Balancer;
  readonly upstreams: readonly Upstream[];
  /** `retries.on` as bits of NEXT. */
  readonly nextUpstream: number;
  /** Attempts per request, first included (nginx proxy_next_upstream_tries; 0 = servers). */
  readonly tries: number;
  readonly triesTimeoutMs: number;
  /** `timeouts.response_headers`, `timeouts.idle` and `timeouts.send` (ms, 0 = none), enforced by the exchange, not by undici. */
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly sendTimeoutMs: number;
  /** The compiled `hash_key` for the `hash` algorithm. */
  readonly hashKey: KeyFunction | undefined;
  /** keepalive.connections 0: `Connection: close` on every upstream request (nginx without `keepalive`). */
  readonly reset: boolean;
  readonly sticky: StickyCookies | undefined;
  readonly health: PoolHealth | undefined;
  readonly #dispatchers: SharedDispatcher[];
  readonly #now: () => number;
  readonly #previous: UpstreamPool | undefined;
  /** Built by a reload (servers new to it start pending a health check), not at startup. */
  readonly #reloaded: boolean;
  /** `tried` sets that leave only server i pickable: how a sticky request asks the balancer for i. */
  #onlyOne: ReadonlySet<number>[] | undefined;
  #unsubscribe: (() => void) | undefined;
  #refs = 0;
  #retired = false;
  readonly #retiredDone = Promise.withResolvers<void>();
  #disposed: Promise<void> | undefined;

  /** `reload` is set when a reload builds it: `previous` is the generation of the same name, if any. */
  constructor(name: string, config: PoolSection, deps: PoolDeps, reload?: { readonly previous: UpstreamPool | undefined }) {
    this.name = name;
    this.config = config;
    this.#now = deps.now;
    const previous = reload?.previous;
    this.#previous = previous;
    this.#reloaded = reload !== undefined;
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
      random: deps.random,
      consistent: config.consistent,
      ipHashWholeAddress: config.ip_hash_whole_address,
    });
    this.hashKey = config.algorithm === 'hash' ? compileKeyTemplate(config.hash_key ?? '$request_uri') : undefined;
    const reusable = new Map((previous ? previous.#dispatchers : []).map((d) => [d.key, d]));
    const protocols = config.servers.map((s) => upstreamProtocol(s.address, config, `proxy.pools.${name}`, config.timeouts.connect));
    this.#dispatchers = config.servers.map((s, i) => {
      const key = dispatcherKey(s.address, config, protocols[i]!);
      const d = reusable.get(key) ?? new SharedDispatcher(key, newDispatcher(s.address, config, protocols[i]!));
      d.holders++;
      return d;
    });
    this.upstreams = config.servers.map((s, i) => ({
      address: s.address,
      dispatcher: this.#dispatchers[i]!.pool,
      servername: protocols[i]!.servername,
    }));
    this.nextUpstream = config.retries.on.reduce((bits, n) => bits | NEXT[n], 0);
    this.tries = config.retries.tries === 0 ? config.servers.length : config.retries.tries;
    this.triesTimeoutMs = config.retries.timeout;
    this.headersTimeoutMs = config.timeouts.response_headers;
    this.idleTimeoutMs = config.timeouts.idle;
    this.sendTimeoutMs = config.timeouts.send;
    this.reset = config.keepalive.connections === 0;
    this.sticky = config.sticky
      ? new StickyCookies(
          name,
          config.sticky,
          config.servers.map((s) => s.address),
        )
      : undefined;
    const check = config.health_check;
    // Every server of a pool has the same TLS settings (only the SNI default differs, which checks do not use).
    const tls = protocols[0] && { key: protocols[0].key, files: protocols[0].tlsFiles };
    const kept =
      previous?.health && isDeepStrictEqual(previous.health.check, check) && previous.health.tlsKey === (tls?.key ?? '')
        ? previous.health
        : undefined;
    this.health = check ? (kept ?? new PoolHealth(name, check, deps.random, tls)) : undefined;
    if (this.health) this.health.holders++;
  }

  /** Whether `config` is exactly this pool's: a reload then keeps this generation as it is. */
  sameConfig(config: PoolSection): boolean {
    return isDeepStrictEqual(this.config, config);
  }

  /**
   * Makes the generation live: sets the health targets (servers new to the pool are pending until their
   * first passing check; on the very first configuration all start healthy), seeds the balancer with the
   * verdicts, follows their changes and starts the checks.
   */
  activate(): void {
    const health = this.health;
    if (!health) return;
    const prev = this.#previous;
    const prevHealth = prev?.health;
    const seed = (key: string): boolean | undefined => {
      if (!this.#reloaded) return true;
      if (!prev) return undefined;
      if (!prevHealth) return prev.#hasServer(key) ? true : undefined;
      // health_check changed: a server known healthy stays healthy until the new check says otherwise.
      return prevHealth.known(key) && prevHealth.healthy(key) ? true : undefined;
    };
    health.setTargets(
      this.upstreams.map((u) => u.address),
      seed,
    );
    const now = this.#now();
    this.upstreams.forEach((u, i) => {
      if (!health.healthy(keyOf(u.address))) this.balancer.setHealthy(i, false, now);
    });
    this.#unsubscribe = health.subscribe((key, healthy) => this.#onVerdict(key, healthy));
    health.start();
  }

  /** Resolves once servers pending a first check have had it (bounded by the check's timeout + 1 s). */
  async ready(): Promise<void> {
    const health = this.health;
    if (!health) return;
    const pending = this.upstreams.map((u) => keyOf(u.address)).filter((k) => !health.known(k));
    if (pending.length > 0) await health.firstChecks(pending, health.check.timeout + 1000);
  }

  #hasServer(key: string): boolean {
    return this.upstreams.some((u) => keyOf(u.address) === key);
  }

  #onVerdict(key: string, healthy: boolean): void {
    const now = this.#now();
    this.upstreams.forEach((u, i) => {
      if (keyOf(u.address) === key) this.balancer.setHealthy(i, healthy, now);
    });
  }

  /**
   * The server for a request whose sticky cookie names `index`, counted like a pick, or -1 when it is
   * not usable (down, unhealthy, failed, at max_conns): the balancer is asked with every other server
   * marked as tried, so its own rules decide and its accounting stays exact.
   */
  pickSticky(index: number, clientAddress: string, hashKey: string, now: number): number {
    if (index < 0 || index >= this.upstreams.length) return -1;
    this.#onlyOne ??= this.upstreams.map((_, i) => new Set(this.upstreams.map((_u, j) => j).filter((j) => j !== i)));
    return this.balancer.pick({ clientAddress, hashKey, tried: this.#onlyOne[index]! }, now);
  }

  /** A request starts on this generation. */
  acquire(): void {
    this.#refs++;
  }

  /** A request that `acquire`d ends; the last one out of a retired generation disposes it. */
  release(): void {
    this.#refs--;
    if (this.#retired && this.#refs === 0) this.#retiredDone.resolve(this.close(false));
  }

  /**
   * No new request will use this generation (a reload replaced it). Resolves once its last request
   * has ended and what it does not share with a newer generation is closed.
   */
  retire(): Promise<void> {
    this.#retired = true;
    if (this.#refs === 0) this.#retiredDone.resolve(this.close(false));
    return this.#retiredDone.promise;
  }

  /** Per-server state for the admin /status endpoint. */
  status(): { name: string; algorithm: string; servers: (ServerState & { address: string; check?: TargetHealth })[] } {
    const now = this.#now();
    const checks = new Map(this.health?.status().map((c) => [targetKey(c.target), c]));
    return {
      name: this.name,
      algorithm: this.balancer.algorithm,
      servers: this.upstreams.map((u, i) => {
        const check = checks.get(keyOf(u.address));
        return { address: u.address, ...this.balancer.state(i, now), ...(check ? { check } : {}) };
      }),
    };
  }

  /**
   * Lets go of the shared parts: undici Pools and the health monitor no newer generation holds are
   * closed (gracefully, or at once with `force`). Idempotent.
   */
  close(force: boolean): Promise<void> {
    this.#disposed ??= this.#dispose(force);
    return this.#disposed;
  }

  async #dispose(force: boolean): Promise<void> {
    this.#unsubscribe?.();
    const closing: Promise<void>[] = [];
    for (const d of this.#dispatchers) if (--d.holders === 0 || force) closing.push(d.close(force));
    const health = this.health;
    if (health && (--health.holders === 0 || force)) closing.push(health.stop());
    await Promise.all(closing);
  }
}

function keyOf(address: string): string {
  return targetKey(splitHostPort(address)!);
}

/** Servers whose address and connection settings are unchanged keep their undici Pool across a reload. */
function dispatcherKey(address: string, config: PoolSection, protocol: UpstreamProtocol): string {
  return JSON.stringify([address, config.keepalive, config.timeouts, protocol.key]);
}

function newDispatcher(address: string, config: PoolSection, protocol: UpstreamProtocol): Pool {
  const t = config.timeouts;
  return new Pool(`${protocol.scheme}${address}`, {
    connections: config.keepalive.max_connections === 0 ? null : config.keepalive.max_connections,
    pipelining: 1,
    keepAliveTimeout: config.keepalive.timeout,
    // The upstream's own Keep-Alive: timeout= hint may shorten but never lengthen ours.
    keepAliveMaxTimeout: config.keepalive.timeout,
    connect: { timeout: t.connect },
    // Off: exchange.ts keeps these deadlines (expireAttempts) without a timer object per request.
    headersTimeout: 0,
    bodyTimeout: 0,
    ...protocol.poolOptions,
  });
}

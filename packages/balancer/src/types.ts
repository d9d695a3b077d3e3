/**
 * The one interface every load-balancing algorithm implements. Algorithms are pure: they never
 * do I/O, and they take the clock (`now`, ms) and randomness (`random`) as parameters so tests
 * can drive them exactly.
 *
 * Servers are addressed by their index in the `servers` array given to the factory; that array
 * holds primaries and backups together (backup servers have `backup: true`) in config order.
 */

/** The algorithm names of the config schema; the registry has exactly these keys. */
export const ALGORITHMS = ['round_robin', 'weighted', 'ip_hash', 'hash', 'least_conn', 'random_two', 'ewma'] as const;
export type AlgorithmName = (typeof ALGORITHMS)[number];

/** One upstream server as the balancer sees it (nginx `server` parameters). */
export interface ServerSpec {
  /** `host:port` (IPv6 as `[addr]:port`); unique within a pool. */
  readonly address: string;
  /** nginx `weight=` (default 1). */
  readonly weight: number;
  /** nginx `max_fails=` (default 1; 0 disables passive health accounting). */
  readonly maxFails: number;
  /** nginx `fail_timeout=` in ms (default 10 000). */
  readonly failTimeoutMs: number;
  /** nginx `backup`: used only when every primary is unavailable. */
  readonly backup: boolean;
  /** nginx `down`: never used. */
  readonly down: boolean;
  /** nginx `max_conns=` (0 = unlimited). */
  readonly maxConns: number;
  /** nginx plus `slow_start=` in ms (0 = off): weight ramps up linearly after recovery. */
  readonly slowStartMs: number;
}

export interface BalancerOptions {
  /** Randomness in [0, 1), for random_two, ewma tie breaks and nginx's random start points. */
  readonly random: () => number;
  /** `hash`: nginx `hash $key consistent` (ketama ring) instead of modulo. */
  readonly consistent?: boolean;
  /** `ip_hash`: hash the whole IPv4 address instead of its first three octets. */
  readonly ipHashWholeAddress?: boolean;
  /** `ewma`: time constant of the latency average, ms (default 10 000). */
  readonly ewmaDecayMs?: number;
  /** `ewma`: latency assumed for a server not measured yet, ms (default 30). */
  readonly ewmaDefaultLatencyMs?: number;
}

/** What a pick may depend on. */
export interface PickRequest {
  /** The client address as the proxy determined it (after trusted-proxy processing). */
  readonly clientAddress: string;
  /** The evaluated hash key (for `hash`); '' otherwise. */
  readonly hashKey: string;
  /** Indices already tried for this request (retries never reuse a server). */
  readonly tried: ReadonlySet<number>;
}

export interface AttemptOutcome {
  /** The attempt failed in a way that counts against the server (nginx `proxy_next_upstream` conditions). */
  readonly failed: boolean;
  /** Time to response headers (or to failure), ms. Used by ewma. */
  readonly latencyMs: number;
}

export interface Balancer {
  readonly algorithm: AlgorithmName;
  readonly servers: readonly ServerSpec[];
  /**
   * Chooses a server for one attempt and counts it as active, or returns -1 when no server is
   * usable (every primary and backup down, failed, unhealthy, at max_conns, or already tried).
   */
  pick(req: PickRequest, now: number): number;
  /** Ends an attempt started by `pick` (exactly once per successful pick). */
  release(index: number, outcome: AttemptOutcome, now: number): void;
  /** Active health verdict from the health checker (default: healthy). */
  setHealthy(index: number, healthy: boolean, now: number): void;
  /** A read-only view of one server's state, for /status. */
  state(index: number, now: number): ServerState;
}

export interface ServerState {
  readonly active: number;
  readonly healthy: boolean;
  /** Passive health: true while failures >= max_fails within fail_timeout. */
  readonly failed: boolean;
  readonly fails: number;
  readonly effectiveWeight: number;
}

export type BalancerFactory = (servers: readonly ServerSpec[], options: BalancerOptions) => Balancer;

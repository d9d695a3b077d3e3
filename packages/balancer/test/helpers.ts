import type { AlgorithmName, Balancer, BalancerOptions, PickRequest, ServerSpec } from '../src/index.ts';
import { createBalancer } from '../src/index.ts';

/** A server with nginx's defaults, overridable. */
export function server(address: string, overrides: Partial<ServerSpec> = {}): ServerSpec {
  return {
    address,
    weight: 1,
    maxFails: 1,
    failTimeoutMs: 10_000,
    backup: false,
    down: false,
    maxConns: 0,
    slowStartMs: 0,
    ...overrides,
  };
}

/** Servers named a, b, c… (address `a:80`…) with the given weights. */
export function weighted(weights: readonly number[], overrides: Partial<ServerSpec> = {}): ServerSpec[] {
  return weights.map((weight, k) => server(`${String.fromCharCode(97 + k)}:80`, { weight, ...overrides }));
}

/** Deterministic randomness for tests (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const NONE: ReadonlySet<number> = new Set();

export function request(overrides: Partial<PickRequest> = {}): PickRequest {
  return { clientAddress: '192.0.2.1', hashKey: '', tried: NONE, ...overrides };
}

export function make(algorithm: AlgorithmName, servers: readonly ServerSpec[], options: Partial<BalancerOptions> = {}): Balancer {
  return createBalancer(algorithm, servers, { random: seededRandom(1), ...options });
}

/** Letter of a server index (-1 → '-'). */
export function letter(index: number): string {
  return index < 0 ? '-' : String.fromCharCode(97 + index);
}

/**
 * Runs a scripted sequence: each step picks one server at `now` and releases it at once, failed
 * when `fail(step, index)` says so. Returns the picked letters joined by spaces.
 */
export function sequence(
  b: Balancer,
  steps: number,
  opts: { now?: (step: number) => number; fail?: (step: number, index: number) => boolean; req?: PickRequest } = {},
): string {
  const out: string[] = [];
  for (let s = 0; s < steps; s++) {
    const now = opts.now?.(s) ?? 0;
    const i = b.pick(opts.req ?? request(), now);
    out.push(letter(i));
    if (i >= 0) b.release(i, { failed: opts.fail?.(s, i) ?? false, latencyMs: 1 }, now);
  }
  return out.join(' ');
}

/** Counts picks per server over `n` picks released immediately. */
export function counts(b: Balancer, n: number, req: (k: number) => PickRequest = () => request()): number[] {
  const c = new Array<number>(b.servers.length).fill(0);
  for (let k = 0; k < n; k++) {
    const i = b.pick(req(k), 0);
    if (i < 0) throw new Error(`pick ${k} returned -1`);
    c[i]!++;
    b.release(i, { failed: false, latencyMs: 1 }, 0);
  }
  return c;
}

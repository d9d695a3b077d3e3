/** The little of a loaded tiergate.yaml drainDelayMs reads. */
export interface DrainDelayFacts {
  readonly proxy?: {
    readonly listeners: readonly { readonly address: string; readonly port: number }[];
    readonly monitor_uri?: string | undefined;
    readonly drain_delay: 'auto' | number;
  };
  readonly virtual_services: readonly {
    readonly address?: string | undefined;
    readonly port?: number | undefined;
    readonly forwarding: 'dr' | 'nat' | 'tun';
    readonly real_servers: readonly { readonly address: string; readonly port?: number | undefined }[];
    readonly health_check?:
      | {
          readonly type: string;
          readonly interval: number;
          readonly timeout: number;
          readonly fall: number;
          readonly jitter: number;
          readonly port?: number | undefined;
        }
      | undefined;
  }[];
}

/** `drain_delay: auto` with a `monitor_uri` but no director check found in the file (a balancer tiergate does not configure). */
export const DEFAULT_DRAIN_DELAY_MS = 10_000;
/** Added to the director's detection time: its netlink write and a check that started just before the flip. */
export const DRAIN_DELAY_MARGIN_MS = 1_000;

const WILDCARD = new Set(['0.0.0.0', '::']);

/**
 * How long a leaving proxy keeps serving with `monitor_uri` answering 503 before it closes its listeners
 * (`proxy.drain_delay`). A number is taken as it is. `auto`: without `monitor_uri`, 0 (nothing can see the node
 * leave, so waiting only delays the stop); with it, the longest time the file's director needs to quiesce this
 * node: for each virtual service with an http(s) check that lands on one of the proxy's listeners (the check's
 * `port`, else the real server's; the listener on a wildcard address, the real server's address or the VIP),
 * `fall` checks spaced `interval × (1 + jitter)` apart, plus the check's `timeout` and DRAIN_DELAY_MARGIN_MS; when
 * none lands there, DEFAULT_DRAIN_DELAY_MS. A tcp check cannot see the signal (the listener stays open) and is not
 * counted: `tiergate validate` warns about it. Pure.
 */
export function drainDelayMs(config: DrainDelayFacts): number {
  const proxy = config.proxy;
  if (!proxy) return 0;
  if (proxy.drain_delay !== 'auto') return proxy.drain_delay;
  if (proxy.monitor_uri === undefined) return 0;
  let longest: number | undefined;
  for (const vs of config.virtual_services) {
    const hc = vs.health_check;
    if (!hc || (hc.type !== 'http' && hc.type !== 'https')) continue;
    if (!checksProxyListener(vs, proxy.listeners)) continue;
    const ms = Math.round(hc.fall * hc.interval * (1 + hc.jitter)) + hc.timeout + DRAIN_DELAY_MARGIN_MS;
    longest = Math.max(longest ?? 0, ms);
  }
  return longest ?? DEFAULT_DRAIN_DELAY_MS;
}

/**
 * Whether the director's check of this virtual service (its `port`, else the real server's) reaches one of the
 * proxy's listeners: same port, and the listener on a wildcard address, the real server's address or the VIP.
 * Without a health check, whether its traffic does.
 */
export function checksProxyListener(
  vs: DrainDelayFacts['virtual_services'][number],
  listeners: readonly { readonly address: string; readonly port: number }[],
): boolean {
  return vs.real_servers.some((rs) => {
    // DR and TUN cannot translate ports: the node receives on the service's port (desired.ts destPortOf).
    const port = vs.health_check?.port ?? (vs.forwarding === 'nat' ? (rs.port ?? vs.port) : vs.port);
    return listeners.some((l) => l.port === port && (WILDCARD.has(l.address) || l.address === rs.address || l.address === vs.address));
  });
}

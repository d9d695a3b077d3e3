import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkAdminRequest, isLoopbackAddress, statusPageAccess } from '@tiergate/config/runtime';
import { type ErrorCode, httpStatusOf, isTgError, TgError } from '@tiergate/errors';
import { acceptErrorLogger } from './connection-limit.ts';
import { type ExpositionFormat, expositionFormat, percentiles, type WorkerSnapshot } from './metrics.ts';
import { http } from './node-http.ts';
import type { BoundAddress, ProxyLogger } from './proxy-server.ts';
import { proxyStatusPage } from './status-page.ts';

/** Where the admin endpoint gets its answers: one process, or the cluster primary asking its workers. */
export interface AdminSource {
  /** One snapshot per running proxy process. */
  snapshots(): Promise<WorkerSnapshot[]>;
  /**
   * Prometheus exposition text (or OpenMetrics, as `format` asks) and its content type; absent with
   * `telemetry.metrics.enabled: false` (404).
   */
  metrics?(format: ExpositionFormat): Promise<{ contentType: string; text: string }>;
  /** True once shutdown began (readiness fails, so balancers stop sending). */
  draining(): boolean;
  /** Re-reads and applies the config file; rejects with a TgError (the running config stays). */
  reload?(): Promise<void>;
  /** POST /healthcheck/fail (true) and /healthcheck/ok (false): ProxyServer#failHealthCheck in every process. */
  healthCheck?(failing: boolean): Promise<void>;
}

export interface AdminConfig {
  readonly address: string;
  readonly port: number;
  /** When set, every request needs `Authorization: Bearer <token>`; required off loopback. */
  readonly token?: string | undefined;
}

/** A running admin listener. */
export interface AdminServer extends AsyncDisposable {
  address(): { address: string; port: number };
  close(): Promise<void>;
}

/** One server of a pool as /status shows it, merged over workers. */
export interface ServerView {
  readonly address: string;
  /** `up`, `down` (config), `unhealthy` (active check), `failed` (max_fails), or `mixed` when workers disagree. */
  readonly state: string;
  /** How many workers see each state. */
  readonly states: Record<string, number>;
  readonly backup: boolean;
  /** Active health check: `healthy`, `unhealthy`, `mixed` (workers disagree) or `unchecked`. */
  readonly health: string;
  readonly lastCheck: string | undefined;
  /** When the active health check last changed its verdict (ISO 8601, latest over workers); undefined before any change. */
  readonly lastChange: string | undefined;
  /** The balancer's effective weight (lowered after failures, ramping up in slow start), lowest over workers. */
  readonly weight: number;
  readonly active: number;
  readonly requests: number;
  readonly failures: number;
  /** Over the most recent attempts (up to 256 per worker). */
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly samples: number };
}

/** The body of GET /status. */
export interface AdminStatus {
  readonly draining: boolean;
  readonly listeners: BoundAddress[];
  readonly inFlight: number;
  /** Client connections open, all workers (nginx stub_status's "Active connections"). */
  readonly connections: number;
  readonly workers: { worker: string; pid: number; uptimeS: number; rssBytes: number; inFlight: number; connections: number }[];
  readonly pools: { name: string; algorithm: string; servers: ServerView[] }[];
}

type ServerStatus = WorkerSnapshot['status']['pools'][number]['servers'][number];

function stateOf(s: ServerStatus, flags: { down: boolean } | undefined): string {
  if (flags?.down) return 'down';
  if (!s.healthy) return 'unhealthy';
  if (s.failed) return 'failed';
  return 'up';
}

function summary(counts: Record<string, number>): string {
  const keys = Object.keys(counts);
  return keys.length === 1 ? keys[0]! : 'mixed';
}

/** Merges the workers' snapshots into one /status view (sums, state counts, percentiles over all samples). */
export function mergeStatus(snaps: readonly WorkerSnapshot[], draining: boolean): AdminStatus {
  const pools = new Map<string, { name: string; algorithm: string; servers: Map<string, ServerStatus[]> }>();
  const merged = (pool: string, address: string) => snaps.map((w) => w.servers[`${pool}/${address}`]).filter((c) => c !== undefined);
  for (const w of snaps)
    for (const p of w.status.pools) {
      let entry = pools.get(p.name);
      if (!entry) {
        entry = { name: p.name, algorithm: p.algorithm, servers: new Map() };
        pools.set(p.name, entry);
      }
      for (const s of p.servers) {
        const list = entry.servers.get(s.address) ?? [];
        entry.servers.set(s.address, [...list, s]);
      }
    }
  const first = snaps[0];
  return {
    draining: draining || snaps.some((w) => w.status.draining),
    listeners: first ? first.status.listeners : [],
    inFlight: snaps.reduce((n, w) => n + w.status.inFlight, 0),
    connections: snaps.reduce((n, w) => n + w.status.connections, 0),
    workers: snaps.map((w) => ({
      worker: w.worker,
      pid: w.pid,
      uptimeS: w.uptimeS,
      rssBytes: w.rssBytes,
      inFlight: w.status.inFlight,
      connections: w.status.connections,
    })),
    pools: [...pools.values()].map((p) => ({
      name: p.name,
      algorithm: p.algorithm,
      servers: [...p.servers].map(([address, list]) => {
        const key = `${p.name}/${address}`;
        const flags = snaps.find((w) => w.flags[key])?.flags[key];
        const states: Record<string, number> = {};
        const health: Record<string, number> = {};
        for (const s of list) {
          const st = stateOf(s, flags);
          states[st] = (states[st] ?? 0) + 1;
          const h = s.check ? (s.check.healthy ? 'healthy' : 'unhealthy') : 'unchecked';
          health[h] = (health[h] ?? 0) + 1;
        }
        const counters = merged(p.name, address);
        const samples = counters.flatMap((c) => c.latencies);
        const [p50, p90, p99] = percentiles(samples, [50, 90, 99]);
        const lastResult = list.find((s) => s.check?.lastResult)?.check?.lastResult;
        const changes = list.map((s) => s.check?.lastChangeAt ?? null).filter((t) => t !== null);
        return {
          address,
          state: summary(states),
          states,
          backup: flags?.backup ?? false,
          health: summary(health),
          lastCheck: lastResult ? `${lastResult.ok ? 'ok' : 'failed'}: ${lastResult.detail}` : undefined,
          lastChange: changes.length > 0 ? new Date(Math.max(...changes)).toISOString() : undefined,
          weight: Math.round(Math.min(...list.map((s) => s.effectiveWeight)) * 100) / 100,
          active: list.reduce((n, s) => n + s.active, 0),
          requests: counters.reduce((n, c) => n + c.requests, 0),
          failures: counters.reduce((n, c) => n + c.failures, 0),
          latencyMs: { p50: p50!, p90: p90!, p99: p99!, samples: samples.length },
        };
      }),
    })),
  };
}

/** /readyz: listeners bound, at least one usable (`up` in some worker) server per pool, not draining. */
export function readiness(status: AdminStatus): { ready: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (status.draining) reasons.push('draining');
  if (status.listeners.length === 0) reasons.push('no listener bound');
  for (const p of status.pools) if (!p.servers.some((s) => (s.states.up ?? 0) > 0)) reasons.push(`pool ${p.name}: no usable server`);
  return { ready: reasons.length === 0, reasons };
}

function send(res: ServerResponse, status: number, body: string, type = 'application/json'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value, null, 2)}\n`);
}

function sendError(res: ServerResponse, err: unknown, log: ProxyLogger | undefined): void {
  const code: ErrorCode = isTgError(err) ? err.code : 'TG_ADMIN_FAILED';
  const message = isTgError(err) ? err.message : 'internal error';
  if (!isTgError(err)) log?.warn({ err: String(err) }, 'admin request failed');
  sendJson(res, httpStatusOf(code), { error: { code, message } });
}

async function route(req: IncomingMessage, res: ServerResponse, source: AdminSource): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const method = req.method ?? 'GET';
  if (path === '/' && (method === 'GET' || method === 'HEAD')) {
    const page = proxyStatusPage();
    res.writeHead(200, page.headers);
    return void res.end(method === 'HEAD' ? undefined : page.body);
  }
  if (path === '/reload' && source.reload) {
    if (method !== 'POST') return send(res, 405, 'use POST\n', 'text/plain');
    await source.reload();
    return sendJson(res, 200, { reloaded: true });
  }
  if ((path === '/healthcheck/fail' || path === '/healthcheck/ok') && source.healthCheck) {
    if (method !== 'POST') return send(res, 405, 'use POST\n', 'text/plain');
    const failing = path === '/healthcheck/fail';
    await source.healthCheck(failing);
    return sendJson(res, 200, { healthCheck: failing ? 'fail' : 'pass' });
  }
  if (method !== 'GET' && method !== 'HEAD') return send(res, 405, 'use GET\n', 'text/plain');
  switch (path) {
    case '/healthz':
      return send(res, 200, 'ok\n', 'text/plain');
    case '/readyz': {
      const r = readiness(mergeStatus(await source.snapshots(), source.draining()));
      return sendJson(res, r.ready ? 200 : 503, r);
    }
    case '/status':
      return sendJson(res, 200, mergeStatus(await source.snapshots(), source.draining()));
    case '/metrics': {
      if (!source.metrics) return send(res, 404, 'metrics are off (telemetry.metrics.enabled: false)\n', 'text/plain');
      const m = await source.metrics(expositionFormat(req.headers.accept));
      return send(res, 200, m.text, m.contentType);
    }
    default:
      return send(res, 404, 'not found: / /healthz /readyz /status /metrics /reload /healthcheck/fail /healthcheck/ok\n', 'text/plain');
  }
}

/**
 * Starts the admin listener (default 127.0.0.1:9901): GET / (the live status page, status-page.ts; served
 * without the token, as it holds no data), /healthz (the process answers), /readyz
 * (200 or 503 with reasons), /status (JSON, `AdminStatus`), /metrics (Prometheus text), POST /reload, POST
 * /healthcheck/fail and /healthcheck/ok (Envoy's names: `monitor_uri` answers 503, or 200 again).
 * A request naming a foreign Host, or a browser's (Origin), gets 403 TG_ADMIN_FORBIDDEN; with `token`,
 * one without the bearer token gets 401 TG_ADMIN_UNAUTHORIZED (checkAdminRequest in @tiergate/config).
 * Errors are JSON `{error: {code, message}}` with the catalogue's status, never a stack. An address
 * other than loopback without a token is refused with TG_CONFIG_INVALID (the schema refuses it too).
 */
export async function startAdminServer(config: AdminConfig, source: AdminSource, log?: ProxyLogger): Promise<AdminServer> {
  if (config.token === undefined && !isLoopbackAddress(config.address))
    throw new TgError('TG_CONFIG_INVALID', `admin: a token is required to listen on ${config.address}, which is not loopback`);
  const server: Server = http.createServer((req, res) => {
    req.resume();
    const refused = checkAdminRequest(req, statusPageAccess(req.method, req.url, config));
    if (refused) {
      if (refused.status === 401) res.setHeader('www-authenticate', 'Bearer realm="tiergate-admin"');
      sendError(res, new TgError(refused.code, refused.message), log);
      return;
    }
    route(req, res, source).catch((err: unknown) => sendError(res, err, log));
  });
  await new Promise<void>((resolve, reject) => {
    const onListenError = (cause: Error) =>
      reject(new TgError('TG_PROXY_LISTEN', `admin: cannot listen on ${config.address}:${config.port}: ${cause.message}`, { cause }));
    server.once('error', onListenError);
    server.listen(config.port, config.address, () => {
      server.off('error', onListenError);
      resolve();
    });
  });
  server.on('error', acceptErrorLogger(log, `admin ${config.address}:${(server.address() as AddressInfo).port}`));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };
  return {
    address: () => {
      const a = server.address() as AddressInfo;
      return { address: a.address, port: a.port };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

import type { StatusPage, StatusPageRow, StatusPageView } from '@tiergate/config';
import { statusPage } from '@tiergate/config/runtime';
import type { AdminStatus } from './admin-server.ts';

/**
 * /status → the rows of the proxy's status page: one per server of each pool. Runs in the browser too
 * (its source is embedded in the page), so it uses nothing outside its own body.
 * Row state: `draining` while the proxy drains, `down` for down / unhealthy / failed, `backup` for a usable
 * backup server, `mixed` when workers disagree, else `up`.
 */
export function proxyStatusView(status: AdminStatus): StatusPageView {
  const rows: StatusPageRow[] = [];
  const ms = (v: number) => (Number.isFinite(v) ? String(Math.round(v * 10) / 10) : '-');
  for (const pool of status.pools)
    for (const s of pool.servers) {
      const failing = s.state === 'down' || s.state === 'unhealthy' || s.state === 'failed';
      const state = status.draining ? 'draining' : failing ? 'down' : s.state === 'mixed' ? 'mixed' : s.backup ? 'backup' : 'up';
      const perWorker = Object.entries(s.states)
        .map(([k, n]) => `${k}×${n}`)
        .join(' ');
      rows.push({
        key: `${pool.name} ${s.address}`,
        state,
        cells: {
          pool: `${pool.name} (${pool.algorithm})`,
          server: s.address,
          state: `${s.state}${s.backup ? ' backup' : ''}${status.draining ? ' draining' : ''}${s.state === 'mixed' ? ` (${perWorker})` : ''}`,
          health: s.health,
          weight: String(s.weight),
          active: String(s.active),
          requests: String(s.requests),
          errors: String(s.failures),
          latency: s.latencyMs.samples > 0 ? `${ms(s.latencyMs.p50)} / ${ms(s.latencyMs.p90)} / ${ms(s.latencyMs.p99)}` : '-',
          lastCheck: s.lastCheck ?? '-',
          lastChange: s.lastChange ?? '-',
        },
      });
    }
  const listeners = status.listeners.map((l) => `${l.family === 'IPv6' ? `[${l.address}]` : l.address}:${l.port}${l.tls ? ' tls' : ''}`);
  return {
    summary: [
      status.draining ? 'DRAINING' : 'serving',
      `listeners: ${listeners.join(', ') || 'none'}`,
      `workers: ${status.workers.length}`,
      `in flight: ${status.inFlight}`,
      `connections: ${status.connections}`,
    ],
    rows,
  };
}

let page: StatusPage | undefined;

/** The proxy admin's `GET /` page, built once. */
export function proxyStatusPage(): StatusPage {
  page ??= statusPage({
    title: 'tiergate proxy status',
    columns: [
      { key: 'pool', label: 'Pool' },
      { key: 'server', label: 'Server' },
      { key: 'state', label: 'State' },
      { key: 'health', label: 'Health check' },
      { key: 'weight', label: 'Weight', numeric: true },
      { key: 'active', label: 'Active', numeric: true },
      { key: 'requests', label: 'Requests', numeric: true },
      { key: 'errors', label: 'Errors', numeric: true },
      { key: 'latency', label: 'Latency p50 / p90 / p99 (ms)', numeric: true },
      { key: 'lastCheck', label: 'Last check' },
      { key: 'lastChange', label: 'Last change' },
    ],
    render: proxyStatusView,
  });
  return page;
}

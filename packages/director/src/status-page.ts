import { type StatusPage, type StatusPageRow, type StatusPageView, statusPage } from '@tiergate/config';
import type { DirectorStatus } from './reconciler.ts';

/**
 * /status → the rows of the director's status page, the IPVS table as `ipvsadm -Ln --stats` shows it plus
 * health and drain: one row per real server of each virtual service (a service without any gets one row
 * of its own). Runs in the browser too (its source is embedded in the page), so it uses nothing outside
 * its own body. Row state: `draining` (draining or drained by hand), `down` (its health check fails),
 * else `up`.
 */
export function directorStatusView(status: DirectorStatus): StatusPageView {
  const rows: StatusPageRow[] = [];
  const names: Record<string, string> = { route: 'Route', masq: 'Masq', tunnel: 'Tunnel', local: 'Local' };
  const count = (v: number | undefined) => (v === undefined ? '-' : String(v));
  for (const s of status.services) {
    const service = `${s.service} ${s.scheduler}${s.persistent ? ` persistent ${s.timeout}` : ''}${s.managed ? '' : ' (not managed)'}`;
    if (s.destinations.length === 0)
      rows.push({ key: `${s.key} -`, state: 'down', cells: { service, server: '(no real server)', conns: count(s.stats?.conns) } });
    for (const d of s.destinations) {
      const hold = (status.held ?? []).find((h) => h.service === s.key && h.server === d.server);
      const health = d.healthy === null ? 'unchecked' : d.healthy ? 'up' : 'down';
      rows.push({
        key: `${s.key} ${d.server}`,
        state: d.draining || hold ? 'draining' : d.healthy === false ? 'down' : 'up',
        cells: {
          service,
          server: d.server,
          forward: names[d.forward] ?? d.forward,
          weight: String(d.weight),
          health,
          drain: hold ? `held (${hold.phase}) since ${new Date(hold.since).toISOString()}` : d.draining ? 'draining' : '-',
          active: String(d.activeConns),
          inactive: String(d.inactConns),
          conns: count(d.stats?.conns),
          inBytes: count(d.stats?.inBytes),
          outBytes: count(d.stats?.outBytes),
        },
      });
    }
  }
  // Drained by hand and removed from the kernel: in no service's list, so a row of their own.
  for (const h of status.held ?? [])
    if (h.phase === 'removed')
      rows.push({
        key: `${h.service} ${h.server}`,
        state: 'draining',
        cells: { service: h.service, server: h.server, drain: `held (removed) since ${new Date(h.since).toISOString()}` },
      });
  const last = status.lastCycle;
  return {
    summary: [
      `director ${status.director}`,
      `cycles: ${status.cycles}`,
      last
        ? `last cycle ${new Date(last.at).toISOString()} ${last.kind}: ${last.error ? `failed (${last.error.code}: ${last.error.message})` : `ok, ${last.ops} ops in ${last.durationMs} ms`}`
        : 'no cycle yet',
    ],
    rows,
  };
}

let page: StatusPage | undefined;

/** The director admin's `GET /` page, built once. */
export function directorStatusPage(): StatusPage {
  page ??= statusPage({
    title: 'tiergate director status',
    columns: [
      { key: 'service', label: 'Virtual service' },
      { key: 'server', label: 'Real server' },
      { key: 'forward', label: 'Forward' },
      { key: 'weight', label: 'Weight', numeric: true },
      { key: 'health', label: 'Health' },
      { key: 'drain', label: 'Drain' },
      { key: 'active', label: 'ActiveConn', numeric: true },
      { key: 'inactive', label: 'InActConn', numeric: true },
      { key: 'conns', label: 'Conns', numeric: true },
      { key: 'inBytes', label: 'InBytes', numeric: true },
      { key: 'outBytes', label: 'OutBytes', numeric: true },
    ],
    render: directorStatusView,
  });
  return page;
}

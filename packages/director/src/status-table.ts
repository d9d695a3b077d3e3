import type { DirectorStatus, StatsJson } from './reconciler.ts';

const FORWARD_NAMES: Record<string, string> = { route: 'Route', masq: 'Masq', tunnel: 'Tunnel', local: 'Local' };

function stats(s: StatsJson | null): string {
  if (!s) return `${'-'.padStart(9)}`.repeat(5);
  return [s.conns, s.inPkts, s.outPkts, s.inBytes, s.outBytes].map((v) => String(v).padStart(9)).join('');
}

/**
 * `ipvsadm -Ln --stats` with the director's view added: forward method, weight, connections, health
 * (up/down, `-` unchecked) and drain state per real server; foreign services are marked. Pure.
 */
export function formatStatusTable(status: DirectorStatus): string {
  const lines = [
    `director ${status.director}${status.lastCycle ? `: ${status.cycles} cycles, last ${status.lastCycle.error ? `failed (${status.lastCycle.error.code})` : `ok (${status.lastCycle.ops} ops)`}` : ''}`,
    `${'Prot LocalAddress:Port Scheduler'.padEnd(44)}${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((h) => h.padStart(9)).join('')}`,
    `${'  -> RemoteAddress:Port Forward Weight ActiveConn InActConn Health'.padEnd(44)}`,
  ];
  for (const s of status.services) {
    const flags = `${s.scheduler}${s.persistent ? ` persistent ${s.timeout}` : ''}${s.managed ? '' : ' (not managed)'}`;
    lines.push(`${`${s.service.replace(' ', '  ')} ${flags}`.padEnd(44)}${stats(s.stats)}`);
    for (const d of s.destinations) {
      const health = d.healthy === null ? '-' : d.healthy ? 'up' : 'down';
      const hold = status.held?.find((h) => h.service === s.key && h.server === d.server);
      const cols = `  -> ${d.server.padEnd(22)} ${(FORWARD_NAMES[d.forward] ?? d.forward).padEnd(7)} ${String(d.weight).padEnd(6)} ${String(d.activeConns).padEnd(10)} ${String(d.inactConns).padEnd(9)} ${health}${d.draining ? ' draining' : ''}${hold ? ` held (${hold.phase})` : ''}`;
      lines.push(`${cols.padEnd(44)}${stats(d.stats)}`);
    }
  }
  // Drained by hand and removed: in no service's list above, so named here (until `tiergate director undrain`).
  for (const h of status.held ?? []) if (h.phase === 'removed') lines.push(`held (removed): ${h.service} -> ${h.server}`);
  return `${lines.join('\n')}\n`;
}

import type { AdminStatus } from '@tiergate/proxy';

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

const ms = (v: number) => (v < 10 ? v.toFixed(2) : v.toFixed(0));
const mib = (b: number) => `${(b / 1048576).toFixed(0)} MiB`;

/** `tiergate proxy status`: the /status JSON as a table per pool, with readiness on top. */
export function renderStatus(s: AdminStatus, ready: { ready: boolean; reasons: string[] }): string {
  const out: string[] = [];
  const listeners = s.listeners.map((l) => `${l.tls ? 'https' : 'http'}://${l.address}:${l.port}`).join(', ');
  out.push(
    `ready: ${ready.ready ? 'yes' : `no (${ready.reasons.join('; ')})`}${s.draining ? ', draining' : ''}`,
    `listeners: ${listeners || 'none'}`,
    `in flight: ${s.inFlight}, connections: ${s.connections}`,
    '',
  );
  out.push(
    ...table([
      ['WORKER', 'PID', 'UPTIME', 'RSS', 'IN FLIGHT', 'CONNECTIONS'],
      ...s.workers.map((w) => [w.worker, String(w.pid), `${w.uptimeS}s`, mib(w.rssBytes), String(w.inFlight), String(w.connections)]),
    ]),
  );
  for (const p of s.pools) {
    out.push('', `pool ${p.name} (${p.algorithm})`);
    out.push(
      ...table([
        ['SERVER', 'STATE', 'HEALTH', 'ACTIVE', 'REQUESTS', 'FAILURES', 'P50 MS', 'P90 MS', 'P99 MS'],
        ...p.servers.map((v) => [
          `${v.address}${v.backup ? ' (backup)' : ''}`,
          v.state === 'mixed'
            ? Object.entries(v.states)
                .map(([k, n]) => `${k}:${n}`)
                .join(',')
            : v.state,
          v.health,
          String(v.active),
          String(v.requests),
          String(v.failures),
          ms(v.latencyMs.p50),
          ms(v.latencyMs.p90),
          ms(v.latencyMs.p99),
        ]),
      ]).map((l) => `  ${l}`),
    );
  }
  return `${out.join('\n')}\n`;
}

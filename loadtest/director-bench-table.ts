/**
 * The director benchmark's table, shared by its host half (which renders the same table for `ipvsadm -R`) and
 * its guest half (which hands it to the daemon): services on 10.200.0.0/16 (port 80, wrr), real servers on
 * 10.201.0.0/16, except service 0, whose real servers are on loopback (127.0.1.x) and health-checked by TCP on
 * `checkPort`. `changedWeight` is the weight of service 1's first real server (what a reload changes).
 */
export function configText(nServices: number, nDests: number, changedWeight: number, checkPort: number): string {
  const lines = ['version: 1', 'virtual_services:'];
  for (let s = 0; s < nServices; s++) {
    const check =
      s === 0 ? `, health_check: { type: tcp, port: ${checkPort}, interval: 200ms, timeout: 200ms, rise: 1, fall: 1, jitter: 0 }` : '';
    lines.push(`  - { address: 10.200.${s >> 8}.${s & 255}, port: 80, scheduler: wrr${check}, real_servers: [`);
    const rs: string[] = [];
    for (let d = 0; d < nDests; d++) {
      const i = s * nDests + d;
      const address = s === 0 ? checkedAddress(d) : `10.201.${(i >> 8) & 255}.${i & 255}`;
      rs.push(`{ address: ${address}, weight: ${s === 1 && d === 0 ? changedWeight : 1} }`);
    }
    lines.push(`      ${rs.join(', ')}] }`);
  }
  return `${lines.join('\n')}\n`;
}

/** Where service 0's real servers answer their TCP health check (on lo; IPVS accepts local addresses). */
export function checkedAddress(d: number): string {
  return `127.0.1.${d}`;
}

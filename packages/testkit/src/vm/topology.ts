import { join } from 'node:path';

/** Addresses of the guest-only test network (10.99.0.0/24 exists only inside the QEMU guest). */
export const GUEST_NET = {
  prefix: '10.99.0',
  cidr: '10.99.0.0/24',
  vip: '10.99.0.100',
  director: '10.99.0.2',
  client: '10.99.0.50',
  bridge: '10.99.0.254',
  /** Real server i (1-based) is at prefix.(rsBase + i): rs1 = 10.99.0.11. */
  rsBase: 10,
} as const;

/** The address of real server `i` (1-based), as `tg_rs_ip` computes it in the guest. */
export function guestRealServerIp(i: number): string {
  return `${GUEST_NET.prefix}.${GUEST_NET.rsBase + i}`;
}

/** The bash helper library; the guest sees the host's files at the same paths. */
export const TOPOLOGY_SH = join(import.meta.dirname, 'topology.sh');

/**
 * Bash to put at the top of a guest script: exports the addresses of GUEST_NET and sources the
 * helpers `tg_topology_up N`, `tg_director_vip`, `tg_realserver_dr NS`, `tg_sysctl`, `tg_rs_ip`,
 * `tg_wait_file` (see topology.sh). The repo must not live under /tmp: the guest's /tmp is its own.
 */
export function topologyPrelude(): string {
  const n = GUEST_NET;
  return [
    `export TG_PREFIX=${n.prefix} TG_VIP=${n.vip} TG_CLIENT_IP=${n.client} TG_DIRECTOR_IP=${n.director}`,
    `export TG_BRIDGE_IP=${n.bridge} TG_RS_BASE=${n.rsBase}`,
    `source '${TOPOLOGY_SH}'`,
    '',
  ].join('\n');
}

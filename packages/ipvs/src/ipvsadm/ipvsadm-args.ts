import { formatEndpoint } from '../address.ts';
import type { IpvsDestination, IpvsForward, IpvsService, IpvsServiceId } from '../model.ts';
import { defaultNetmask } from '../model.ts';
import type { IpvsOp } from '../ops.ts';

/**
 * IPVS ops as ipvsadm 1.31 command lines, in the option order `ipvsadm -S` prints so a saved
 * table and a rendered plan read alike. ipvsadm cannot express a timeout or netmask on a
 * non-persistent service (it only sends them with `-p`), so those are not rendered.
 */

const PROTOCOL_SWITCH = { tcp: '-t', udp: '-u', sctp: '--sctp-service' } as const;
const FORWARD_SWITCH: Record<IpvsForward, string> = { route: '-g', local: '-g', masq: '-m', tunnel: '-i' };
const CHECKSUM_SWITCH = { nocsum: '--tun-nocsum', csum: '--tun-csum', remcsum: '--tun-remcsum' } as const;

/** `-t 192.0.2.10:80`, `-f 7 -6`: how ipvsadm selects a service. */
export function serviceSelectorArgs(id: IpvsServiceId): string[] {
  if (id.fwmark !== undefined) return id.family === 'inet6' ? ['-f', String(id.fwmark), '-6'] : ['-f', String(id.fwmark)];
  return [PROTOCOL_SWITCH[id.protocol], formatEndpoint(id.address, id.port)];
}

function serviceSettingArgs(svc: IpvsService): string[] {
  const args = ['-s', svc.scheduler];
  if (svc.flags.persistent) {
    args.push('-p', String(svc.timeout));
    if (String(svc.netmask) !== String(defaultNetmask(svc.family))) args.push('-M', String(svc.netmask));
  }
  if (svc.peName) args.push('--pe', svc.peName);
  if (svc.flags.onePacket) args.push('-o');
  if (svc.flags.schedFlags.length > 0) args.push('-b', svc.flags.schedFlags.join(','));
  return args;
}

function destSettingArgs(dest: IpvsDestination): string[] {
  const args = [FORWARD_SWITCH[dest.forward], '-w', String(dest.weight)];
  if (dest.upperThreshold > 0) args.push('-x', String(dest.upperThreshold));
  if (dest.lowerThreshold > 0) args.push('-y', String(dest.lowerThreshold));
  if (dest.forward === 'tunnel' && dest.tunnel) {
    const t = dest.tunnel;
    args.push('--tun-type', t.type);
    if (t.type === 'gue') args.push('--tun-port', String(t.port));
    if (t.type !== 'ipip') args.push(CHECKSUM_SWITCH[t.checksum]);
  }
  return args;
}

/** The ipvsadm arguments (without the program name) that perform one op. */
export function toIpvsadmArgs(op: IpvsOp): string[] {
  switch (op.kind) {
    case 'add-service':
      return ['-A', ...serviceSelectorArgs(op.service), ...serviceSettingArgs(op.service)];
    case 'update-service':
      return ['-E', ...serviceSelectorArgs(op.service), ...serviceSettingArgs(op.service)];
    case 'delete-service':
      return ['-D', ...serviceSelectorArgs(op.service)];
    case 'add-destination':
    case 'update-destination': {
      const { destination: d } = op;
      const cmd = op.kind === 'add-destination' ? '-a' : '-e';
      return [cmd, ...serviceSelectorArgs(op.service), '-r', formatEndpoint(d.address, d.port), ...destSettingArgs(d)];
    }
    case 'delete-destination':
      return ['-d', ...serviceSelectorArgs(op.service), '-r', formatEndpoint(op.destination.address, op.destination.port)];
    case 'set-timeouts':
      return ['--set', String(op.timeouts.tcp ?? 0), String(op.timeouts.tcpFin ?? 0), String(op.timeouts.udp ?? 0)];
    case 'start-daemon': {
      const d = op.daemon;
      const args = ['--start-daemon', d.state, '--mcast-interface', d.interface, '--syncid', String(d.syncId)];
      if (d.maxLen !== undefined) args.push('--sync-maxlen', String(d.maxLen));
      if (d.group !== undefined) args.push('--mcast-group', d.group);
      if (d.port !== undefined) args.push('--mcast-port', String(d.port));
      if (d.ttl !== undefined) args.push('--mcast-ttl', String(d.ttl));
      return args;
    }
    case 'stop-daemon':
      return ['--stop-daemon', op.state];
    case 'zero':
      return op.service === undefined ? ['-Z'] : ['-Z', ...serviceSelectorArgs(op.service)];
    case 'flush':
      return ['-C'];
  }
}

/** Quotes an argument for a POSIX shell only when it needs it (ipvsadm arguments rarely do). */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./[\]-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A copy-pasteable command line for an op: `ipvsadm -a -t 192.0.2.10:80 -r 10.0.0.11:80 -g -w 1`. */
export function formatIpvsadmCommand(op: IpvsOp): string {
  return ['ipvsadm', ...toIpvsadmArgs(op)].map(shellQuote).join(' ');
}

/** Ops as an `ipvsadm -R` script (one invocation per line, without the program name). */
export function formatIpvsadmRestore(ops: readonly IpvsOp[]): string {
  return ops.map((op) => `${toIpvsadmArgs(op).map(shellQuote).join(' ')}\n`).join('');
}

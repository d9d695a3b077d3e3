import { TgError } from '@tiergate/errors';
import { canonicalAddress, familyOfAddress } from '../address.ts';
import {
  defaultNetmask,
  destKey,
  type IpvsDaemon,
  type IpvsDestination,
  type IpvsFamily,
  type IpvsForward,
  type IpvsInfo,
  type IpvsProtocol,
  type IpvsSchedFlag,
  type IpvsService,
  type IpvsServiceEntry,
  type IpvsServiceId,
  type IpvsTimeouts,
  type IpvsTunnel,
  serviceKey,
} from '../model.ts';

/**
 * Parsers for ipvsadm 1.31 output. Hand-written: no library reads ipvsadm's formats, and the
 * grammar is the small option set `ipvsadm -S` prints (reference §4, ipvsadm.c print_service_entry).
 */

function parseError(lineNo: number, line: string, why: string): TgError {
  return new TgError('TG_IPVSADM_FAILED', `cannot parse ipvsadm output line ${lineNo} '${line}': ${why}`);
}

/** `192.0.2.10:80` or `[2001:db8::10]:80` → address and port. */
export function parseEndpoint(text: string): { address: string; port: number; family: IpvsFamily } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d+\.\d+\.\d+\.\d+)):(\d{1,5})$/.exec(text);
  if (!m) throw new TgError('TG_IPVSADM_FAILED', `'${text}' is not a numeric address:port (was -n forgotten?)`);
  const address = canonicalAddress((m[1] ?? m[2]) as string);
  return { address, port: Number(m[3]), family: familyOfAddress(address) };
}

const PROTOCOL_OPTIONS: Record<string, IpvsProtocol> = {
  '-t': 'tcp',
  '--tcp-service': 'tcp',
  '-u': 'udp',
  '--udp-service': 'udp',
  '--sctp-service': 'sctp',
};
const FORWARD_OPTIONS: Record<string, IpvsForward> = {
  '-g': 'route',
  '--gatewaying': 'route',
  '-m': 'masq',
  '--masquerading': 'masq',
  '-i': 'tunnel',
  '--ipip': 'tunnel',
};
const CHECKSUM_OPTIONS = { '--tun-nocsum': 'nocsum', '--tun-csum': 'csum', '--tun-remcsum': 'remcsum' } as const;
const OPTION_ALIASES: Record<string, string> = {
  '--add-service': '-A',
  '--add-server': '-a',
  '--fwmark-service': '-f',
  '--ipv6': '-6',
  '--scheduler': '-s',
  '--persistent': '-p',
  '--netmask': '-M',
  '--ops': '-o',
  '--sched-flags': '-b',
  '--real-server': '-r',
  '--weight': '-w',
  '--u-threshold': '-x',
  '--l-threshold': '-y',
};

/** One `-A`/`-a` line as option → value (flags map to ''). */
interface RuleLine {
  command: '-A' | '-a';
  options: Map<string, string>;
}

const VALUELESS = new Set(['-6', '-o', '-g', '-m', '-i', '--tun-nocsum', '--tun-csum', '--tun-remcsum']);

function tokenizeRule(line: string, lineNo: number): RuleLine | undefined {
  const tokens = line.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
  if (tokens[0] === 'ipvsadm') tokens.shift();
  if (tokens.length === 0) return undefined;
  const command = OPTION_ALIASES[tokens[0] as string] ?? tokens[0];
  if (command !== '-A' && command !== '-a') throw parseError(lineNo, line, `expected -A or -a, got '${tokens[0]}'`);
  const options = new Map<string, string>();
  for (let i = 1; i < tokens.length; i++) {
    const raw = tokens[i] as string;
    const opt = OPTION_ALIASES[raw] ?? raw;
    if (VALUELESS.has(opt) || FORWARD_OPTIONS[opt]) {
      options.set(opt, '');
      continue;
    }
    // -p takes an optional timeout (ipvsadm's default 300); -S always prints it.
    if (opt === '-p' && (tokens[i + 1] === undefined || tokens[i + 1]?.startsWith('-'))) {
      options.set(opt, '300');
      continue;
    }
    const value = tokens[++i];
    if (value === undefined) throw parseError(lineNo, line, `option ${raw} lacks its value`);
    options.set(opt, value);
  }
  return { command, options };
}

function selectorOf(rule: RuleLine, lineNo: number, line: string): IpvsServiceId {
  const fwmark = rule.options.get('-f');
  if (fwmark !== undefined) return { family: rule.options.has('-6') ? 'inet6' : 'inet', fwmark: Number(fwmark) };
  for (const [opt, protocol] of Object.entries(PROTOCOL_OPTIONS)) {
    const v = rule.options.get(opt);
    if (v === undefined) continue;
    const { address, port, family } = parseEndpoint(v);
    return { family, protocol, address, port };
  }
  throw parseError(lineNo, line, 'no service selector (-t, -u, --sctp-service or -f)');
}

function serviceOf(rule: RuleLine, id: IpvsServiceId): IpvsService {
  const o = rule.options;
  const persistent = o.has('-p');
  const mask = o.get('-M');
  const svc: IpvsService = {
    ...id,
    scheduler: o.get('-s') ?? 'wlc',
    flags: { persistent, onePacket: o.has('-o'), schedFlags: (o.get('-b')?.split(',') ?? []) as IpvsSchedFlag[] },
    timeout: persistent ? Number(o.get('-p')) : 0,
    netmask: mask === undefined ? defaultNetmask(id.family) : id.family === 'inet6' ? Number(mask) : mask,
  };
  const pe = o.get('--pe');
  if (pe !== undefined) svc.peName = pe;
  return svc;
}

function destinationOf(rule: RuleLine, lineNo: number, line: string): IpvsDestination {
  const o = rule.options;
  const server = o.get('-r');
  if (server === undefined) throw parseError(lineNo, line, '-a without -r');
  const { address, port, family } = parseEndpoint(server);
  const fwd = [...o.keys()].find((k) => FORWARD_OPTIONS[k]);
  const forward = fwd ? (FORWARD_OPTIONS[fwd] as IpvsForward) : 'route';
  const dest: IpvsDestination = {
    address,
    port,
    family,
    forward,
    weight: Number(o.get('-w') ?? 1),
    upperThreshold: Number(o.get('-x') ?? 0),
    lowerThreshold: Number(o.get('-y') ?? 0),
  };
  if (forward === 'tunnel') dest.tunnel = tunnelOf(o);
  return dest;
}

function tunnelOf(o: Map<string, string>): IpvsTunnel {
  const checksum = (Object.keys(CHECKSUM_OPTIONS) as (keyof typeof CHECKSUM_OPTIONS)[]).find((k) => o.has(k));
  return {
    type: (o.get('--tun-type') ?? 'ipip') as IpvsTunnel['type'],
    port: Number(o.get('--tun-port') ?? 0),
    checksum: checksum ? CHECKSUM_OPTIONS[checksum] : 'nocsum',
  };
}

/**
 * Parses `ipvsadm -S -n` (or an `ipvsadm -R` script of -A/-a lines) into services with their
 * destinations. What the format cannot carry comes back as defaults: thresholds 0, and timeout 0
 * plus the /32 (/128) netmask for non-persistent services.
 */
export function parseIpvsadmSave(text: string): IpvsServiceEntry[] {
  const entries = new Map<string, IpvsServiceEntry>();
  text.split('\n').forEach((line, i) => {
    const rule = tokenizeRule(line, i + 1);
    if (!rule) return;
    const id = selectorOf(rule, i + 1, line);
    if (rule.command === '-A') {
      entries.set(serviceKey(id), { service: serviceOf(rule, id), destinations: [] });
      return;
    }
    const entry = entries.get(serviceKey(id));
    if (!entry) throw parseError(i + 1, line, `destination of a service not added before (${serviceKey(id)})`);
    entry.destinations.push(destinationOf(rule, i + 1, line));
  });
  return [...entries.values()];
}

/** Numbers of one service (and its destinations) from a columnar `ipvsadm -Ln --stats|--rate|--thresholds …` listing. */
export interface IpvsadmListRow {
  values: bigint[];
  destinations: Map<string, bigint[]>;
}

const LIST_PROTOCOLS: Record<string, IpvsProtocol> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function listServiceKey(tokens: string[]): { key: string; rest: string[] } | undefined {
  const [first, second, third] = tokens;
  if (first === 'FWM' && second !== undefined) {
    const v6 = third === 'IPv6';
    return { key: serviceKey({ family: v6 ? 'inet6' : 'inet', fwmark: Number(second) }), rest: tokens.slice(v6 ? 3 : 2) };
  }
  const protocol = first === undefined ? undefined : LIST_PROTOCOLS[first];
  if (protocol === undefined || second === undefined) return undefined;
  const { address, port, family } = parseEndpoint(second);
  return { key: serviceKey({ family, protocol, address, port }), rest: tokens.slice(2) };
}

function numbers(tokens: string[], lineNo: number, line: string): bigint[] {
  return tokens.map((t) => {
    if (!/^\d+$/.test(t)) throw parseError(lineNo, line, `'${t}' is not an exact number (use --exact)`);
    return BigInt(t);
  });
}

/**
 * Parses the columnar listings (`-Ln --stats --exact`, `--rate --exact`, `--thresholds`,
 * `--persistent-conn`): every column after the endpoint, keyed by serviceKey and destKey.
 */
export function parseIpvsadmList(text: string): Map<string, IpvsadmListRow> {
  const rows = new Map<string, IpvsadmListRow>();
  let current: IpvsadmListRow | undefined;
  text.split('\n').forEach((line, i) => {
    const tokens = line.trim().split(/\s+/).filter(Boolean);
    if (tokens[0] === '->') {
      if (!current || tokens[1] === undefined || tokens[1] === 'RemoteAddress:Port') return;
      current.destinations.set(destKey(parseEndpoint(tokens[1])), numbers(tokens.slice(2), i + 1, line));
      return;
    }
    const svc = listServiceKey(tokens);
    if (!svc) return; // headers
    // --thresholds and --persistent-conn print the scheduler and flags on service lines, no numbers.
    const counters = svc.rest.length > 0 && /^\d/.test(svc.rest[0] as string);
    current = { values: counters ? numbers(svc.rest, i + 1, line) : [], destinations: new Map() };
    rows.set(svc.key, current);
  });
  return rows;
}

/** `Timeout (tcp tcpfin udp): 900 120 300` from `ipvsadm -L --timeout`. */
export function parseIpvsadmTimeouts(text: string): IpvsTimeouts {
  const m = /Timeout \(tcp tcpfin udp\):\s*(\d+)\s+(\d+)\s+(\d+)/.exec(text);
  if (!m) throw new TgError('TG_IPVSADM_FAILED', `cannot parse ipvsadm timeouts from '${text.trim()}'`);
  return { tcp: Number(m[1]), tcpFin: Number(m[2]), udp: Number(m[3]) };
}

/** `master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)` lines. */
export function parseIpvsadmDaemons(text: string): IpvsDaemon[] {
  const out: IpvsDaemon[] = [];
  for (const m of text.matchAll(/^(master|backup) sync daemon \(([^)]*)\)/gm)) {
    const kv = new Map((m[2] as string).split(',').map((p) => p.trim().split('=') as [string, string]));
    const d: IpvsDaemon = { state: m[1] as IpvsDaemon['state'], interface: kv.get('mcast') ?? '', syncId: Number(kv.get('syncid') ?? 0) };
    if (kv.has('maxlen')) d.maxLen = Number(kv.get('maxlen'));
    if (kv.has('group')) d.group = kv.get('group') as string;
    if (kv.has('port')) d.port = Number(kv.get('port'));
    if (kv.has('ttl')) d.ttl = Number(kv.get('ttl'));
    out.push(d);
  }
  return out;
}

/** `IP Virtual Server version 1.2.1 (size=4096)`, the first line of `ipvsadm -Ln`. */
export function parseIpvsadmVersion(text: string): IpvsInfo {
  const m = /IP Virtual Server version (\d+)\.(\d+)\.(\d+) \(size=(\d+)\)/.exec(text);
  if (!m) throw new TgError('TG_IPVSADM_FAILED', `cannot parse the IPVS version from '${text.split('\n')[0]}'`);
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return { version: `${major}.${minor}.${patch}`, versionCode: (major << 16) | (minor << 8) | patch, connTabSize: Number(m[4]) };
}

import { TgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import {
  classifyIpvsadmError,
  formatIpvsadmCommand,
  formatIpvsadmRestore,
  IpvsadmDriver,
  type IpvsOp,
  type IpvsService,
  parseIpvsadmDaemons,
  parseIpvsadmList,
  parseIpvsadmSave,
  parseIpvsadmTimeouts,
  parseIpvsadmVersion,
  toIpvsadmArgs,
} from '../src/index.ts';

// The example block of reference §4 (ipvsadm -S -n).
const SAVE = `-A -t 192.0.2.10:80 -s wlc -p 300
-a -t 192.0.2.10:80 -r 10.0.0.11:80 -g -w 1
-a -t 192.0.2.10:80 -r 10.0.0.12:80 -g -w 0
-A -t 192.0.2.20:443 -s mh -b mh-fallback,mh-port
-a -t 192.0.2.20:443 -r 198.51.100.5:443 -i -w 10 --tun-type ipip
-a -t 192.0.2.20:443 -r 198.51.100.6:443 -i -w 10 --tun-type gue --tun-port 6080 --tun-nocsum
-a -t 192.0.2.20:443 -r 198.51.100.7:443 -i -w 10 --tun-type gre --tun-csum
-A -u 192.0.2.30:53 -s rr -o
-a -u 192.0.2.30:53 -r 10.1.0.5:5353 -m -w 1
-A -f 7 -s wrr -p 600 -M 255.255.255.0
-a -f 7 -r 10.0.0.13:0 -i -w 5 --tun-type ipip
-A -t [2001:db8::10]:80 -s rr -p 300 -M 64
-a -t [2001:db8::10]:80 -r [2001:db8::a]:80 -g -w 1
`;

/** The ops that rebuild a parsed table, in save order. */
function addOps(text: string): IpvsOp[] {
  return parseIpvsadmSave(text).flatMap((e) => [
    { kind: 'add-service', service: e.service } as IpvsOp,
    ...e.destinations.map((destination): IpvsOp => ({ kind: 'add-destination', service: e.service, destination })),
  ]);
}

describe('ipvsadm -S -n parser', () => {
  it('parses the reference block into services and destinations', () => {
    const entries = parseIpvsadmSave(SAVE);
    expect(entries.map((e) => [e.service.scheduler, e.destinations.length])).toEqual([
      ['wlc', 2],
      ['mh', 3],
      ['rr', 1],
      ['wrr', 1],
      ['rr', 1],
    ]);
    expect(entries[0]!.service).toEqual({
      family: 'inet',
      protocol: 'tcp',
      address: '192.0.2.10',
      port: 80,
      scheduler: 'wlc',
      flags: { persistent: true, onePacket: false, schedFlags: [] },
      timeout: 300,
      netmask: '255.255.255.255',
    });
    expect(entries[1]!.service.flags.schedFlags).toEqual(['mh-fallback', 'mh-port']);
    expect(entries[1]!.destinations.map((d) => d.tunnel)).toEqual([
      { type: 'ipip', port: 0, checksum: 'nocsum' },
      { type: 'gue', port: 6080, checksum: 'nocsum' },
      { type: 'gre', port: 0, checksum: 'csum' },
    ]);
    expect(entries[2]!.service.flags.onePacket).toBe(true);
    expect(entries[2]!.destinations[0]).toMatchObject({ address: '10.1.0.5', port: 5353, forward: 'masq', weight: 1 });
    expect(entries[3]!.service).toMatchObject({ family: 'inet', fwmark: 7, timeout: 600, netmask: '255.255.255.0' });
    expect(entries[4]!.service).toMatchObject({ family: 'inet6', address: '2001:db8::10', netmask: 64 });
    expect(entries[4]!.destinations[0]).toMatchObject({ family: 'inet6', address: '2001:db8::a', forward: 'route' });
  });

  it('renders the parsed table back to exactly the same lines (restore format)', () => {
    expect(formatIpvsadmRestore(addOps(SAVE))).toBe(SAVE);
  });

  it('accepts restore scripts: leading ipvsadm, comments, long options, -p without value, IPv6 fwmark', () => {
    const [svc] = parseIpvsadmSave('ipvsadm --add-service --fwmark-service 9 -6 --scheduler sh -b sh-port -p # comment\n\n');
    expect(svc!.service).toMatchObject({ family: 'inet6', fwmark: 9, scheduler: 'sh', timeout: 300, netmask: 128 });
    expect(svc!.service.flags.schedFlags).toEqual(['sh-port']);
  });

  it('rejects a destination of an unknown service and non-numeric addresses with TG_IPVSADM_FAILED', () => {
    expect(() => parseIpvsadmSave('-a -t 192.0.2.1:80 -r 10.0.0.1:80 -g -w 1')).toThrow(/not added before/);
    expect(() => parseIpvsadmSave('-A -t vip.example:http -s rr')).toThrow(/was -n forgotten/);
    const err = (() => {
      try {
        parseIpvsadmSave('-X foo');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(TgError);
    expect((err as TgError).code).toBe('TG_IPVSADM_FAILED');
  });
});

describe('ipvsadm listings', () => {
  it('parses --stats --exact with numbers beyond 32 bits, IPv6 and fwmark services', () => {
    const rows = parseIpvsadmList(`IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.10:80                    1234    98765        0 5123456789        0
  -> 10.0.0.11:80                      617    49380        0 2561728394        0
FWM  7 IPv6                              1        2        3        4        5
TCP  [2001:db8::10]:80                   0        0        0        0        0
  -> [2001:db8::a]:80                    0        0        0        0        0
`);
    expect(rows.get('tcp/192.0.2.10:80')?.values).toEqual([1234n, 98765n, 0n, 5123456789n, 0n]);
    expect(rows.get('tcp/192.0.2.10:80')?.destinations.get('10.0.0.11:80')).toEqual([617n, 49380n, 0n, 2561728394n, 0n]);
    expect(rows.get('fwmark/inet6/7')?.values).toEqual([1n, 2n, 3n, 4n, 5n]);
    expect(rows.get('tcp/[2001:db8::10]:80')?.destinations.has('[2001:db8::a]:80')).toBe(true);
  });

  it('refuses abbreviated numbers (without --exact)', () => {
    expect(() => parseIpvsadmList('TCP  192.0.2.10:80  1234 98765 0 5123M 0')).toThrow(/--exact/);
  });

  it('parses --thresholds columns (service lines carry the scheduler, not numbers)', () => {
    const rows = parseIpvsadmList(`Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn
  -> RemoteAddress:Port
UDP  192.0.2.30:53 rr ops
  -> 10.1.0.5:5353                 100        50         3          7
TCP  192.0.2.10:80 sh (sh-fallback,sh-port) persistent 300
`);
    expect(rows.get('udp/192.0.2.30:53')?.values).toEqual([]);
    expect(rows.get('udp/192.0.2.30:53')?.destinations.get('10.1.0.5:5353')).toEqual([100n, 50n, 3n, 7n]);
    expect(rows.has('tcp/192.0.2.10:80')).toBe(true);
  });

  it('parses timeouts, daemons and the version header', () => {
    expect(parseIpvsadmTimeouts('Timeout (tcp tcpfin udp): 900 120 300\n')).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    expect(
      parseIpvsadmDaemons(
        'master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\nbackup sync daemon (mcast=eth1, syncid=0)\n',
      ),
    ).toEqual([
      { state: 'master', interface: 'eth0', syncId: 5, maxLen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 },
      { state: 'backup', interface: 'eth1', syncId: 0 },
    ]);
    expect(parseIpvsadmVersion('IP Virtual Server version 1.2.1 (size=4096)\nProt …')).toEqual({
      version: '1.2.1',
      versionCode: 0x010201,
      connTabSize: 4096,
    });
  });
});

describe('ops as ipvsadm command lines', () => {
  const svc: IpvsService = {
    family: 'inet',
    protocol: 'tcp',
    address: '192.0.2.10',
    port: 80,
    scheduler: 'sh',
    flags: { persistent: false, onePacket: false, schedFlags: ['sh-fallback', 'sh-port'] },
    timeout: 0,
    netmask: '255.255.255.255',
  };
  const dest = {
    address: '10.0.0.11',
    port: 80,
    family: 'inet',
    forward: 'masq',
    weight: 3,
    upperThreshold: 100,
    lowerThreshold: 10,
  } as const;
  it.each<[IpvsOp, string]>([
    [{ kind: 'add-service', service: svc }, 'ipvsadm -A -t 192.0.2.10:80 -s sh -b sh-fallback,sh-port'],
    [
      {
        kind: 'update-service',
        service: {
          ...svc,
          protocol: 'sctp',
          scheduler: 'rr',
          flags: { persistent: true, onePacket: false, schedFlags: [] },
          timeout: 60,
          netmask: '255.255.0.0',
        },
      },
      'ipvsadm -E --sctp-service 192.0.2.10:80 -s rr -p 60 -M 255.255.0.0',
    ],
    [{ kind: 'delete-service', service: { family: 'inet6', fwmark: 3 } }, 'ipvsadm -D -f 3 -6'],
    [{ kind: 'add-destination', service: svc, destination: dest }, 'ipvsadm -a -t 192.0.2.10:80 -r 10.0.0.11:80 -m -w 3 -x 100 -y 10'],
    [
      {
        kind: 'update-destination',
        service: svc,
        destination: {
          ...dest,
          forward: 'tunnel',
          upperThreshold: 0,
          lowerThreshold: 0,
          tunnel: { type: 'gue', port: 6080, checksum: 'remcsum' },
        },
      },
      'ipvsadm -e -t 192.0.2.10:80 -r 10.0.0.11:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-remcsum',
    ],
    [
      {
        kind: 'delete-destination',
        service: { family: 'inet6', protocol: 'udp', address: '2001:db8::10', port: 53 },
        destination: { address: '2001:db8::a', port: 53, family: 'inet6' },
      },
      'ipvsadm -d -u [2001:db8::10]:53 -r [2001:db8::a]:53',
    ],
    [{ kind: 'set-timeouts', timeouts: { tcp: 900, udp: 60 } }, 'ipvsadm --set 900 0 60'],
    [
      {
        kind: 'start-daemon',
        daemon: { state: 'master', interface: 'eth0', syncId: 5, group: '224.0.0.81', port: 8848, ttl: 1, maxLen: 1472 },
      },
      'ipvsadm --start-daemon master --mcast-interface eth0 --syncid 5 --sync-maxlen 1472 --mcast-group 224.0.0.81 --mcast-port 8848 --mcast-ttl 1',
    ],
    [{ kind: 'stop-daemon', state: 'backup' }, 'ipvsadm --stop-daemon backup'],
    [{ kind: 'zero' }, 'ipvsadm -Z'],
    [{ kind: 'zero', service: { family: 'inet', fwmark: 7 } }, 'ipvsadm -Z -f 7'],
    [{ kind: 'flush' }, 'ipvsadm -C'],
  ])('%# renders %s', (op, line) => {
    expect(formatIpvsadmCommand(op)).toBe(line);
    expect(toIpvsadmArgs(op)).toEqual(line.split(' ').slice(1));
  });
});

describe('IpvsadmDriver on this machine (ipvsadm installed, kernel without IPVS)', () => {
  it('fails to open with TG_IPVSADM_FAILED carrying ipvsadm\'s "Protocol not available"', async () => {
    const err = await IpvsadmDriver.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'ipvsadm succeeded: this host test expects a kernel without IPVS').toBeInstanceOf(TgError);
    const tg = err as TgError;
    expect(tg.code).toBe('TG_IPVSADM_FAILED');
    expect(tg.message).toMatch(/^get timeouts: `ipvsadm -L --timeout` exited with \d+: .*Protocol not available/);
    expect(tg.details).toMatchObject({ reason: 'not-loaded', args: ['-L', '--timeout'] });
  });

  it('reports a missing binary as not-installed', async () => {
    const err = (await new IpvsadmDriver({ binary: '/nonexistent/ipvsadm' }).flush().catch((e: unknown) => e)) as TgError;
    expect(err.code).toBe('TG_IPVSADM_FAILED');
    expect(err.message).toMatch(/not installed/);
    expect(err.details).toMatchObject({ reason: 'not-installed' });
  });

  it('classifies libipvs messages', () => {
    expect(classifyIpvsadmError('Service already exists')).toBe('exists');
    expect(classifyIpvsadmError('Service not defined')).toBe('no-service');
    expect(classifyIpvsadmError('No such destination')).toBe('not-found');
    expect(classifyIpvsadmError('Permission denied (you must be root)')).toBe('permission');
    expect(classifyIpvsadmError('Memory allocation problem')).toBe('other');
  });
});

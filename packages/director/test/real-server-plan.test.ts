import { validateConfig } from '@tiergate/config';
import { describe, expect, it } from 'vitest';
import { realServerPlan } from '../src/host-setup.ts';

function services(vs: unknown[]) {
  return validateConfig({ version: 1, virtual_services: vs }).virtual_services;
}
const rs = [{ address: '10.0.0.11' }];

describe('realServerPlan', () => {
  it('DR VIPs go on lo, TUN VIPs on tunl0 with rp_filter 0 there, NAT VIPs nowhere; ARP sysctls on all and the NIC', () => {
    const p = realServerPlan(
      services([
        { address: '10.0.0.100', port: 80, real_servers: rs },
        { address: '10.0.0.101', port: 80, forwarding: 'tun', real_servers: rs },
        { address: '10.0.0.102', port: 80, forwarding: 'nat', real_servers: rs },
      ]),
      'eth0',
    );
    expect(p.vips).toEqual([
      { address: '10.0.0.100', prefix: 32, dev: 'lo' },
      { address: '10.0.0.101', prefix: 32, dev: 'tunl0' },
    ]);
    expect(p.tunnel).toBe(true);
    expect(Object.fromEntries(p.sysctls)).toEqual({
      'net/ipv4/conf/all/arp_ignore': '1',
      'net/ipv4/conf/all/arp_announce': '2',
      'net/ipv4/conf/eth0/arp_ignore': '1',
      'net/ipv4/conf/eth0/arp_announce': '2',
      'net/ipv4/conf/tunl0/rp_filter': '0',
    });
    expect(p.fouPorts).toEqual([]);
    expect(p.gre).toBe(false);
  });

  it('a GRE tunnel needs gre0 (up) with rp_filter 0', () => {
    const p = realServerPlan(
      services([{ address: '10.0.0.101', port: 80, forwarding: 'tun', tunnel: { type: 'gre' }, real_servers: rs }]),
      'eth0',
    );
    expect(p.gre).toBe(true);
    expect(p.sysctls.get('net/ipv4/conf/gre0/rp_filter')).toBe('0');
    expect(p.vips).toEqual([{ address: '10.0.0.101', prefix: 32, dev: 'tunl0' }]);
  });

  it('a GUE tunnel needs a FOU receive port, once per port, only for the chosen VIPs', () => {
    const gue = (address: string, port: number, udp: number) => ({
      address,
      port,
      forwarding: 'tun',
      tunnel: { type: 'gue', port: udp },
      real_servers: rs,
    });
    const svcs = services([gue('10.0.0.101', 80, 6080), gue('10.0.0.101', 443, 6080), gue('10.0.0.102', 80, 5555)]);
    expect(realServerPlan(svcs, 'eth0').fouPorts).toEqual([5555, 6080]);
    expect(realServerPlan(svcs, 'eth0', ['10.0.0.101']).fouPorts).toEqual([6080]);
  });
});

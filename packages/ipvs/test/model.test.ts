import { describe, expect, it } from 'vitest';
import {
  addressToBytes,
  bytesToAddress,
  canonicalAddress,
  describeService,
  destKey,
  type IpvsDestination,
  type IpvsService,
  sameDestination,
  sameService,
  serviceKey,
} from '../src/index.ts';

describe('addresses', () => {
  it('encodes IPv4 into the first 4 of 16 bytes and IPv6 in network order, incl. :: and an IPv4 tail', () => {
    expect(addressToBytes('192.0.2.10').toString('hex')).toBe(`c000020a${'0'.repeat(24)}`);
    expect(addressToBytes('2001:db8::a').toString('hex')).toBe('20010db800000000000000000000000a');
    expect(addressToBytes('::').toString('hex')).toBe('0'.repeat(32));
    expect(addressToBytes('::ffff:192.0.2.1').toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(bytesToAddress(addressToBytes('2001:DB8:0:0:0:0:0:0010'), 'inet6')).toBe('2001:db8::10');
  });

  it('rejects host names', () => {
    expect(() => addressToBytes('vip.example')).toThrow(/not an IPv4 or IPv6 address/);
  });
});

describe('keys', () => {
  const svc: IpvsService = {
    family: 'inet6',
    protocol: 'tcp',
    address: '2001:DB8::0010',
    port: 80,
    scheduler: 'sh',
    flags: { persistent: false, onePacket: false, schedFlags: ['sh-port', 'sh-fallback'] },
    timeout: 0,
    netmask: 128,
  };
  it('canonicalises addresses so user input and kernel replies agree', () => {
    expect(serviceKey(svc)).toBe('tcp/[2001:db8::10]:80');
    expect(serviceKey({ family: 'inet6', fwmark: 7 })).toBe('fwmark/inet6/7');
    expect(destKey({ address: '2001:0db8::000a', port: 8080 })).toBe('[2001:db8::a]:8080');
    expect(canonicalAddress('10.0.0.1')).toBe('10.0.0.1');
    expect(describeService({ family: 'inet6', fwmark: 7 })).toBe('FWM 7 (IPv6)');
  });

  it('compares settings, not stats; scheduler flags as sets', () => {
    const back: IpvsService = { ...svc, address: '2001:db8::10', flags: { ...svc.flags, schedFlags: ['sh-fallback', 'sh-port'] } };
    expect(sameService(svc, { ...back, stats: undefined })).toBe(true);
    expect(sameService(svc, { ...back, scheduler: 'mh' })).toBe(false);
    expect(sameService(svc, { ...back, netmask: 64 })).toBe(false);
  });

  it('treats a kernel-chosen local forward like route and a missing tunnel like ipip', () => {
    const d: IpvsDestination = {
      address: '10.0.0.1',
      port: 80,
      family: 'inet',
      forward: 'route',
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
    };
    expect(sameDestination(d, { ...d, forward: 'local', activeConns: 4 })).toBe(true);
    expect(sameDestination(d, { ...d, weight: 0 })).toBe(false);
    const t = { ...d, forward: 'tunnel' } as const;
    expect(sameDestination(t, { ...t, tunnel: { type: 'ipip', port: 0, checksum: 'nocsum' } })).toBe(true);
    expect(sameDestination(t, { ...t, tunnel: { type: 'gre', port: 0, checksum: 'nocsum' } })).toBe(false);
  });
});

import { validateConfig } from '@tiergate/config';
import { describe, expect, it } from 'vitest';
import { configuredKeys, desiredEntries, healthKey } from '../src/desired.ts';

function services(vs: unknown[]) {
  return validateConfig({ version: 1, virtual_services: vs }).virtual_services;
}

const web = {
  address: '10.0.0.100',
  port: 80,
  scheduler: 'wrr',
  real_servers: [
    { address: '10.0.0.11', weight: 5 },
    { address: '10.0.0.12', weight: 3 },
  ],
};

describe('desiredEntries', () => {
  it('maps a DR service with config defaults (wrr, weights, port = VIP port, /32 netmask, no persistence)', () => {
    const [e] = desiredEntries(services([web]), new Map());
    expect(e?.service).toEqual({
      family: 'inet',
      protocol: 'tcp',
      address: '10.0.0.100',
      port: 80,
      scheduler: 'wrr',
      flags: { persistent: false, onePacket: false, schedFlags: [] },
      timeout: 0,
      netmask: '255.255.255.255',
    });
    expect(e?.destinations).toEqual([
      { address: '10.0.0.11', port: 80, family: 'inet', forward: 'route', weight: 5, upperThreshold: 0, lowerThreshold: 0 },
      { address: '10.0.0.12', port: 80, family: 'inet', forward: 'route', weight: 3, upperThreshold: 0, lowerThreshold: 0 },
    ]);
  });

  it('converts persistence ms to whole seconds, keeps the netmask, orders scheduler flags by kernel bit', () => {
    const [e] = desiredEntries(
      services([
        {
          ...web,
          scheduler: 'sh',
          scheduler_flags: ['sh-port', 'sh-fallback'],
          persistence: { timeout: '1500ms', netmask: '255.255.255.0' },
        },
      ]),
      new Map(),
    );
    expect(e?.service.flags).toEqual({ persistent: true, onePacket: false, schedFlags: ['sh-fallback', 'sh-port'] });
    expect(e?.service.timeout).toBe(2);
    expect(e?.service.netmask).toBe('255.255.255.0');
  });

  it('maps NAT with port translation, TUN with tunnel settings, and fwmark DR destinations to port 0', () => {
    const all = desiredEntries(
      services([
        { address: '10.0.0.100', port: 80, forwarding: 'nat', real_servers: [{ address: '10.0.0.11', port: 8080 }] },
        {
          address: '10.0.0.100',
          port: 443,
          forwarding: 'tun',
          tunnel: { type: 'gue', port: 6080, checksum: 'csum' },
          real_servers: [{ address: '10.0.0.11' }],
        },
        { fwmark: 7, real_servers: [{ address: '10.0.0.11' }] },
        { address: '10.0.0.100', port: 53, protocol: 'udp', one_packet: true, forwarding: 'tun', real_servers: [{ address: '10.0.0.11' }] },
      ]),
      new Map(),
    );
    expect(all[0]?.destinations[0]).toMatchObject({ port: 8080, forward: 'masq' });
    expect(all[0]?.destinations[0]?.tunnel).toBeUndefined();
    expect(all[1]?.destinations[0]).toMatchObject({ port: 443, forward: 'tunnel', tunnel: { type: 'gue', port: 6080, checksum: 'csum' } });
    expect(all[2]?.service).toMatchObject({ family: 'inet', fwmark: 7 });
    expect(all[2]?.destinations[0]).toMatchObject({ port: 0, forward: 'route' });
    expect(all[3]?.service.flags.onePacket).toBe(true);
    expect(all[3]?.destinations[0]?.tunnel).toEqual({ type: 'ipip', port: 0, checksum: 'nocsum' });
  });

  it('quiesces an unhealthy server (weight 0) or removes it, per on_failure', () => {
    const check = (on_failure: string) => ({ ...web, health_check: { type: 'tcp', on_failure } });
    const health = new Map([[healthKey('tcp/10.0.0.100:80', '10.0.0.12:80'), false]]);
    const [q] = desiredEntries(services([check('quiesce')]), health);
    expect(q?.destinations.map((d) => [d.address, d.weight])).toEqual([
      ['10.0.0.11', 5],
      ['10.0.0.12', 0],
    ]);
    const [r] = desiredEntries(services([check('remove')]), health);
    expect(r?.destinations.map((d) => d.address)).toEqual(['10.0.0.11']);
  });

  it('adds the sorry server only while no real server is healthy', () => {
    const vs = { ...web, sorry_server: { address: '10.0.0.99' } };
    const one = new Map([[healthKey('tcp/10.0.0.100:80', '10.0.0.12:80'), false]]);
    expect(desiredEntries(services([vs]), one)[0]?.destinations.map((d) => d.address)).toEqual(['10.0.0.11', '10.0.0.12']);
    const none = new Map([...one, [healthKey('tcp/10.0.0.100:80', '10.0.0.11:80'), false]]);
    expect(desiredEntries(services([vs]), none)[0]?.destinations.map((d) => [d.address, d.weight])).toEqual([
      ['10.0.0.11', 0],
      ['10.0.0.12', 0],
      ['10.0.0.99', 1],
    ]);
  });

  it('lists configured real and sorry servers by health key', () => {
    const keys = configuredKeys(services([{ ...web, sorry_server: { address: '10.0.0.99' } }]));
    expect([...keys]).toEqual(['tcp/10.0.0.100:80 10.0.0.11:80', 'tcp/10.0.0.100:80 10.0.0.12:80', 'tcp/10.0.0.100:80 10.0.0.99:80']);
  });
});

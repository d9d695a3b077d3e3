import { validateConfig } from '@tiergate/config';
import { describe, expect, it } from 'vitest';
import type { DestinationStatus, DirectorStatus } from '../src/reconciler.ts';
import { isSettled, routesOf } from '../src/routed.ts';

// Where a real server stands in each service that lists it (what `tiergate director wait` polls for), read from a
// daemon's status. Pure: the status objects are written out here; the daemon that serves them is in
// test/director-wait-cli.test.ts (a CLI process, real health checks) and the QEMU guest (test/stack-vm.test.ts).

const services = validateConfig({
  version: 1,
  virtual_services: [
    {
      name: 'http',
      address: '10.0.0.100',
      port: 80,
      forwarding: 'tun',
      real_servers: [{ address: '10.0.0.11' }, { address: '2001:db8::12' }],
    },
    {
      name: 'https',
      address: '10.0.0.100',
      port: 443,
      forwarding: 'tun',
      real_servers: [{ address: '10.0.0.11' }, { address: '2001:db8::12', weight: 0 }],
    },
    { name: 'nat', address: '10.0.0.101', port: 80, forwarding: 'nat', real_servers: [{ address: '10.0.0.11', port: 8080 }] },
  ],
}).virtual_services;

const dest = (server: string, weight: number, healthy: boolean | null = true): DestinationStatus => ({
  server,
  forward: 'route',
  weight,
  healthy,
  draining: false,
  activeConns: 0,
  inactConns: 0,
  stats: null,
});
const service = (key: string, destinations: DestinationStatus[]) => ({
  key,
  service: key,
  scheduler: 'wlc',
  persistent: false,
  timeout: 0,
  managed: true,
  stats: null,
  destinations,
});
const status = (svcs: ReturnType<typeof service>[], held: DirectorStatus['held'] = undefined): DirectorStatus => ({
  director: 'lb1',
  cycles: 1,
  lastCycle: null,
  services: svcs,
  ...(held ? { held } : {}),
});

describe('routesOf', () => {
  it('each service listing the server, with its state from weight, health and drains by hand', () => {
    const st = status(
      [
        service('tcp/10.0.0.100:80', [dest('10.0.0.11:80', 0, true), dest('[2001:db8::12]:80', 1)]),
        service('tcp/10.0.0.100:443', [dest('10.0.0.11:443', 0, false), dest('[2001:db8::12]:443', 0)]),
        // nat: absent from the kernel's table (on_failure: remove while down)
        service('tcp/10.0.0.101:80', []),
      ],
      [{ service: 'tcp/10.0.0.100:80', server: '[2001:db8::12]:80', phase: 'drained', after: 'keep', since: 0, timeoutMs: 0 }],
    );
    const r11 = routesOf(services, st, '10.0.0.11');
    expect(r11).toEqual([
      { service: 'tcp/10.0.0.100:80', server: '10.0.0.11:80', state: 'quiesced', weight: 0 },
      { service: 'tcp/10.0.0.100:443', server: '10.0.0.11:443', state: 'down', weight: 0 },
      { service: 'tcp/10.0.0.101:80', server: '10.0.0.11:8080', state: 'absent', weight: null },
    ]);
    expect(r11.some(isSettled)).toBe(false);
    // Another spelling of the IPv6 address; held in one service (weight 1 there does not matter), 0 in the file in the other.
    expect(routesOf(services, st, '2001:0db8:0:0::12').map((r) => [r.service, r.state])).toEqual([
      ['tcp/10.0.0.100:80', 'held'],
      ['tcp/10.0.0.100:443', 'off'],
    ]);
    // ADDR:PORT picks one service's server (the port the kernel holds: NAT's real port).
    expect(routesOf(services, st, '10.0.0.11:8080').map((r) => r.service)).toEqual(['tcp/10.0.0.101:80']);
  });

  it('routed once weighted and not failing; a service without a check (healthy null) counts by weight alone', () => {
    const st = status([
      service('tcp/10.0.0.100:80', [dest('10.0.0.11:80', 1, null)]),
      service('tcp/10.0.0.100:443', [dest('10.0.0.11:443', 3)]),
      service('tcp/10.0.0.101:80', [dest('10.0.0.11:8080', 1)]),
    ]);
    const r = routesOf(services, st, '10.0.0.11');
    expect(r.map((x) => [x.state, x.weight])).toEqual([
      ['routed', 1],
      ['routed', 3],
      ['routed', 1],
    ]);
    expect(r.every(isSettled)).toBe(true);
  });

  it('refuses a server no service lists (naming those there are) and what is not an address', () => {
    const st = status([]);
    expect(() => routesOf(services, st, '10.0.0.99')).toThrow(
      "no virtual service has a real server '10.0.0.99' (real servers: 10.0.0.11:80, [2001:db8::12]:80, 10.0.0.11:443, [2001:db8::12]:443, 10.0.0.11:8080)",
    );
    expect(() => routesOf(services, st, '10.0.0.11:81')).toThrow(/TG_DIRECTOR_UNKNOWN_SERVER|no virtual service/);
    expect(() => routesOf(services, st, 'proxy1')).toThrow("--server: expected ADDR or ADDR:PORT, not 'proxy1'");
  });
});

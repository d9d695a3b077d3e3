import type { IpvsDestination, IpvsService, IpvsServiceEntry } from '@tiergate/ipvs';
import { describe, expect, it } from 'vitest';
import { applyOps } from '../src/apply.ts';
import { plan } from '../src/plan.ts';
import { TableModel } from '../src/table-model.ts';
import { FakeIpvs } from './fake-ipvs.ts';

const svc = (address: string, scheduler = 'rr'): IpvsService => ({
  family: 'inet',
  protocol: 'tcp',
  address,
  port: 80,
  scheduler,
  flags: { persistent: false, onePacket: false, schedFlags: [] },
  timeout: 0,
  netmask: '255.255.255.255',
});
const dest = (address: string, weight: number, activeConns = 0): IpvsDestination => ({
  address,
  port: 80,
  family: 'inet',
  forward: 'route',
  weight,
  upperThreshold: 0,
  lowerThreshold: 0,
  activeConns,
  inactConns: 0,
  persistConns: 0,
});
const sorted = (t: IpvsServiceEntry[]) =>
  t
    .map((e) => ({ ...e, destinations: [...e.destinations].sort((a, b) => a.address.localeCompare(b.address)) }))
    .sort((a, b) => (a.service as { address: string }).address.localeCompare((b.service as { address: string }).address));

describe('TableModel', () => {
  it('mirrors every kind of op as the table applies it: the model after a plan equals a fresh read', async () => {
    const before: IpvsServiceEntry[] = [
      { service: svc('10.0.0.1'), destinations: [dest('10.0.1.1', 1, 3), dest('10.0.1.2', 1), dest('10.0.1.3', 2)] },
      { service: svc('10.0.0.2'), destinations: [dest('10.0.2.1', 1)] },
      { service: svc('10.0.0.3'), destinations: [dest('10.0.3.1', 1)] },
    ];
    const desired: IpvsServiceEntry[] = [
      // update-destination (keeps its 3 connections), delete-destination, add-destination, same
      { service: svc('10.0.0.1'), destinations: [dest('10.0.1.1', 0), dest('10.0.1.3', 2), dest('10.0.1.4', 5)] },
      // update-service
      { service: svc('10.0.0.2', 'wrr'), destinations: [dest('10.0.2.1', 1)] },
      // add-service (10.0.0.3 goes: delete-service)
      { service: svc('10.0.0.4'), destinations: [dest('10.0.4.1', 1)] },
    ];
    const kernel = new FakeIpvs(before);
    const model = new TableModel(structuredClone(before));
    const ops = plan(desired, before, new Set(['tcp/10.0.0.1:80', 'tcp/10.0.0.2:80', 'tcp/10.0.0.3:80', 'tcp/10.0.0.4:80']));
    expect(new Set(ops.map((o) => o.kind)).size).toBe(6);
    const report = await applyOps(kernel, ops);
    for (const op of report.applied) model.apply(op);
    expect(sorted(model.entries())).toEqual(sorted(await kernel.listServices()));
    expect(model.get('tcp/10.0.0.1:80')?.destinations.find((d) => d.address === '10.0.1.1')?.activeConns).toBe(3);
  });
});

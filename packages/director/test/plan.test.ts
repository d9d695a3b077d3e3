import type { IpvsDestination, IpvsService, IpvsServiceEntry } from '@tiergate/ipvs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyOps } from '../src/apply.ts';
import { describeOp, plan } from '../src/plan.ts';
import { FakeIpvs } from './fake-ipvs.ts';

function svc(address: string, port: number, over: Partial<IpvsService> = {}): IpvsService {
  return {
    family: 'inet',
    protocol: 'tcp',
    address,
    port,
    scheduler: 'wrr',
    flags: { persistent: false, onePacket: false, schedFlags: [] },
    timeout: 0,
    netmask: '255.255.255.255',
    ...over,
  } as IpvsService;
}
function dest(address: string, port: number, weight: number, over: Partial<IpvsDestination> = {}): IpvsDestination {
  return { address, port, family: 'inet', forward: 'route', weight, upperThreshold: 0, lowerThreshold: 0, ...over };
}
const entry = (service: IpvsService, ...destinations: IpvsDestination[]): IpvsServiceEntry => ({ service, destinations });
const web = svc('10.0.0.100', 80);
const owned = (...keys: string[]) => new Set(keys);

describe('plan', () => {
  it('adds a missing service before its destinations', () => {
    const ops = plan([entry(web, dest('10.0.0.11', 80, 1), dest('10.0.0.12', 80, 2))], [], owned());
    expect(ops.map(describeOp)).toEqual([
      'add-service TCP 10.0.0.100:80 wrr',
      'add-destination TCP 10.0.0.100:80 -> 10.0.0.11:80 route w=1',
      'add-destination TCP 10.0.0.100:80 -> 10.0.0.12:80 route w=2',
    ]);
  });

  it('is empty when only reply-only fields differ (stats, connection counts) and for equal IPv6 spellings', () => {
    const stats = { conns: 5n, inPkts: 1n, outPkts: 0n, inBytes: 9n, outBytes: 0n, cps: 0n, inPps: 0n, outPps: 0n, inBps: 0n, outBps: 0n };
    const actual = entry({ ...web, stats }, { ...dest('10.0.0.11', 80, 1), activeConns: 3, inactConns: 7, persistConns: 1, stats });
    expect(plan([entry(web, dest('10.0.0.11', 80, 1))], [actual], owned())).toEqual([]);
    const v6 = svc('2001:db8::10', 80, { family: 'inet6', netmask: 128 });
    const v6k = svc('2001:DB8:0::0010', 80, { family: 'inet6', netmask: 128 });
    expect(plan([entry(v6)], [entry(v6k)], owned())).toEqual([]);
  });

  it('updates only what differs: scheduler, persistence, weight, thresholds, forward, tunnel', () => {
    const actual = [entry(web, dest('10.0.0.11', 80, 1), dest('10.0.0.12', 80, 1), dest('10.0.0.13', 80, 1))];
    const desired = [
      entry(
        { ...web, scheduler: 'sh', flags: { persistent: true, onePacket: false, schedFlags: ['sh-fallback'] }, timeout: 300 },
        dest('10.0.0.11', 80, 1),
        dest('10.0.0.12', 80, 4),
        dest('10.0.0.13', 80, 1, { forward: 'tunnel', tunnel: { type: 'gre', port: 0, checksum: 'csum' } }),
      ),
    ];
    expect(plan(desired, actual, owned()).map(describeOp)).toEqual([
      'update-service TCP 10.0.0.100:80 sh',
      'update-destination TCP 10.0.0.100:80 -> 10.0.0.12:80 route w=4',
      'update-destination TCP 10.0.0.100:80 -> 10.0.0.13:80 tunnel w=1',
    ]);
  });

  it('treats a kernel-chosen local forward as matching, and a missing tunnel report as ipip', () => {
    const actual = [entry(web, dest('10.0.0.11', 80, 1, { forward: 'local' }), dest('10.0.0.12', 80, 1, { forward: 'tunnel' }))];
    const desired = [
      entry(
        web,
        dest('10.0.0.11', 80, 1),
        dest('10.0.0.12', 80, 1, { forward: 'tunnel', tunnel: { type: 'ipip', port: 0, checksum: 'nocsum' } }),
      ),
    ];
    expect(plan(desired, actual, owned())).toEqual([]);
  });

  it('deletes stale destinations, and owned services that left the config; never touches foreign services', () => {
    const foreign = entry(svc('10.0.0.200', 80, { scheduler: 'rr' }), dest('10.0.0.50', 80, 1));
    const old = entry(svc('10.0.0.100', 443));
    const actual = [entry(web, dest('10.0.0.11', 80, 1), dest('10.0.0.12', 80, 1)), old, foreign];
    const ops = plan([entry(web, dest('10.0.0.11', 80, 1))], actual, owned('tcp/10.0.0.100:80', 'tcp/10.0.0.100:443'));
    expect(ops.map(describeOp)).toEqual(['delete-destination TCP 10.0.0.100:80 -> 10.0.0.12:80', 'delete-service TCP 10.0.0.100:443']);
  });

  it('changes identity (port, protocol, fwmark) as delete + add', () => {
    const ops = plan([entry(svc('10.0.0.100', 8080))], [entry(web)], owned('tcp/10.0.0.100:80'));
    expect(ops.map((o) => o.kind)).toEqual(['add-service', 'delete-service']);
  });
});

// ------------------------------------------------------------------ property: plan(d, applied(d)) = []

const addr = fc.integer({ min: 1, max: 6 }).map((i) => `10.0.0.${i}`);
const arbDest = fc.record({
  address: fc.integer({ min: 11, max: 16 }).map((i) => `10.0.1.${i}`),
  weight: fc.integer({ min: 0, max: 20 }),
  forward: fc.constantFrom('route' as const, 'masq' as const, 'tunnel' as const),
  upperThreshold: fc.integer({ min: 0, max: 3 }),
});
const arbEntry = fc
  .record({
    address: addr,
    port: fc.constantFrom(80, 443),
    scheduler: fc.constantFrom('rr', 'wrr', 'sh'),
    persistent: fc.boolean(),
    dests: fc.uniqueArray(arbDest, { selector: (d) => d.address, maxLength: 4 }),
  })
  .map((r) =>
    entry(
      svc(r.address, r.port, {
        scheduler: r.scheduler,
        flags: { persistent: r.persistent, onePacket: false, schedFlags: [] },
        timeout: r.persistent ? 300 : 0,
      }),
      ...r.dests.map((d) =>
        dest(d.address, r.port, d.weight, {
          forward: d.forward,
          upperThreshold: d.upperThreshold,
          ...(d.forward === 'tunnel' ? { tunnel: { type: 'ipip' as const, port: 0, checksum: 'nocsum' as const } } : {}),
        }),
      ),
    ),
  );
const arbTable = fc.uniqueArray(arbEntry, { selector: (e) => `${e.service.address}:${e.service.port}`, maxLength: 5 });

describe('plan (property)', () => {
  it('converges in one apply, leaves foreign services alone, and then plans nothing', async () => {
    await fc.assert(
      fc.asyncProperty(arbTable, arbTable, fc.func(fc.boolean()), async (desired, actual, isOwned) => {
        const key = (e: IpvsServiceEntry) => `tcp/${e.service.address}:${e.service.port}`;
        const own = new Set(actual.filter((e) => isOwned(key(e))).map(key));
        const kernel = new FakeIpvs(actual);
        await applyOps(kernel, plan(desired, actual, own));
        const after = await kernel.listServices();
        expect(plan(desired, after, own)).toEqual([]);
        const wanted = new Set(desired.map(key));
        for (const e of actual) {
          if (wanted.has(key(e))) continue;
          expect(after.some((a) => key(a) === key(e))).toBe(!own.has(key(e)));
          if (!own.has(key(e))) expect(after.find((a) => key(a) === key(e))).toEqual(structuredClone(e));
        }
      }),
      { numRuns: 200 },
    );
  });
});

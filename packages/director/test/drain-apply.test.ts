import { isTgError, TgError } from '@tiergate/errors';
import type { IpvsDestination, IpvsService, IpvsServiceEntry } from '@tiergate/ipvs';
import { describe, expect, it } from 'vitest';
import { applyOps, type PartialApplyDetails } from '../src/apply.ts';
import { healthKey } from '../src/desired.ts';
import { type DrainTimes, withDraining } from '../src/drain.ts';
import { plan } from '../src/plan.ts';
import { FakeIpvs } from './fake-ipvs.ts';

const web: IpvsService = {
  family: 'inet',
  protocol: 'tcp',
  address: '10.0.0.100',
  port: 80,
  scheduler: 'rr',
  flags: { persistent: false, onePacket: false, schedFlags: [] },
  timeout: 0,
  netmask: '255.255.255.255',
};
const d = (address: string, weight: number, activeConns?: number): IpvsDestination => ({
  address,
  port: 80,
  family: 'inet',
  forward: 'route',
  weight,
  upperThreshold: 0,
  lowerThreshold: 0,
  ...(activeConns === undefined ? {} : { activeConns }),
});
const SVC = 'tcp/10.0.0.100:80';
const GONE = healthKey(SVC, '10.0.0.12:80');

/** One reconcile step of the drain state machine with a fake clock. */
function step(actual: IpvsServiceEntry[], draining: DrainTimes, now: number, configured = new Set([healthKey(SVC, '10.0.0.11:80')])) {
  const desired: IpvsServiceEntry[] = [{ service: web, destinations: [d('10.0.0.11', 1)] }];
  const r = withDraining({ desired, actual, configured, draining, now, drainTimeout: () => 60_000 });
  return { ...r, ops: plan(r.desired, actual, new Set([SVC])) };
}

describe('draining a real server removed from config', () => {
  it('goes to weight 0 first, stays while it has active connections, is deleted when they reach 0', () => {
    const s1 = step([{ service: web, destinations: [d('10.0.0.11', 1), d('10.0.0.12', 1, 4)] }], new Map(), 1_000);
    expect(s1.ops).toEqual([
      {
        kind: 'update-destination',
        service: { family: 'inet', protocol: 'tcp', address: '10.0.0.100', port: 80 },
        destination: d('10.0.0.12', 0),
      },
    ]);
    expect(s1.draining).toEqual(new Map([[GONE, 1_000]]));
    const s2 = step([{ service: web, destinations: [d('10.0.0.11', 1), d('10.0.0.12', 0, 2)] }], s1.draining, 30_000);
    expect(s2.ops).toEqual([]);
    expect(s2.draining.get(GONE)).toBe(1_000);
    const s3 = step([{ service: web, destinations: [d('10.0.0.11', 1), d('10.0.0.12', 0, 0)] }], s2.draining, 31_000);
    expect(s3.ops.map((o) => o.kind)).toEqual(['delete-destination']);
    expect(s3.draining.size).toBe(0);
  });

  it('is deleted when drain_timeout passes even with connections left', () => {
    const busy = [{ service: web, destinations: [d('10.0.0.11', 1), d('10.0.0.12', 0, 9)] }];
    expect(step(busy, new Map([[GONE, 1_000]]), 60_999).ops).toEqual([]);
    expect(step(busy, new Map([[GONE, 1_000]]), 61_000).ops.map((o) => o.kind)).toEqual(['delete-destination']);
  });

  it('is deleted at once when idle, or when its absence is deliberate (health removal)', () => {
    expect(step([{ service: web, destinations: [d('10.0.0.11', 1), d('10.0.0.12', 1, 0)] }], new Map(), 0).ops.map((o) => o.kind)).toEqual([
      'delete-destination',
    ]);
    const configured = new Set([healthKey(SVC, '10.0.0.11:80'), GONE]);
    const busy = [{ service: web, destinations: [d('10.0.0.11', 1), d('10.0.0.12', 1, 5)] }];
    expect(step(busy, new Map(), 0, configured).ops.map((o) => o.kind)).toEqual(['delete-destination']);
  });
});

describe('applyOps', () => {
  const desired: IpvsServiceEntry[] = [
    { service: web, destinations: [d('10.0.0.11', 1), d('10.0.0.12', 2)] },
    { service: { ...web, port: 443 }, destinations: [d('10.0.0.11', 1)] },
  ];

  it('runs in the safe order (services, destinations, updates, removals), one batch per kind of op', async () => {
    const kernel = new FakeIpvs([{ service: { ...web, port: 8080 }, destinations: [] }]);
    await applyOps(kernel, plan(desired, await kernel.listServices(), new Set(['tcp/10.0.0.100:8080'])));
    expect(kernel.calls).toEqual([
      'addService tcp/10.0.0.100:80',
      'addService tcp/10.0.0.100:443',
      'addDestination tcp/10.0.0.100:80 10.0.0.11:80 w=1',
      'addDestination tcp/10.0.0.100:80 10.0.0.12:80 w=2',
      'addDestination tcp/10.0.0.100:443 10.0.0.11:80 w=1',
      'deleteService tcp/10.0.0.100:8080',
    ]);
    expect(kernel.batches).toEqual([2, 3, 1]);
  });

  it('treats EEXIST on add and ESRCH/ENOENT on delete as done, and reports them as tolerated', async () => {
    const kernel = new FakeIpvs([{ service: web, destinations: [d('10.0.0.11', 1)] }]);
    const ops = plan(desired, [], new Set());
    const stale = { service: web, destination: d('10.0.0.77', 1) };
    const report = await applyOps(kernel, [
      ...ops,
      { kind: 'delete-destination', ...stale },
      { kind: 'delete-service', service: { ...web, port: 1 } },
    ]);
    expect(report.applied).toHaveLength(ops.length + 2);
    expect(report.tolerated.map((o) => o.kind)).toEqual(['add-service', 'add-destination', 'delete-destination', 'delete-service']);
    expect(plan(desired, await kernel.listServices(), new Set())).toEqual([]);
  });

  /** Runs applyOps expecting TG_DIRECTOR_APPLY_PARTIAL; its error. */
  async function partialApply(kernel: FakeIpvs, ops: Parameters<typeof applyOps>[1]): Promise<TgError> {
    try {
      await applyOps(kernel, ops);
    } catch (err) {
      if (isTgError(err, 'TG_DIRECTOR_APPLY_PARTIAL')) return err;
      throw err;
    }
    throw new Error('expected TG_DIRECTOR_APPLY_PARTIAL');
  }

  it('on a real failure finishes that kind of op, reports each op, and attempts no later kind', async () => {
    const kernel = new FakeIpvs([{ service: { ...web, port: 8080 }, destinations: [] }]);
    kernel.failOn = { match: /10\.0\.0\.12/, error: new TgError('TG_IPVS_RANGE', 'value out of range (ERANGE)') };
    const err = await partialApply(kernel, plan(desired, await kernel.listServices(), new Set(['tcp/10.0.0.100:8080'])));
    expect(err.details as PartialApplyDetails).toEqual({
      applied: [
        'add-service TCP 10.0.0.100:80 rr',
        'add-service TCP 10.0.0.100:443 rr',
        'add-destination TCP 10.0.0.100:80 -> 10.0.0.11:80 route w=1',
        // The other destinations were in the same batch: the kernel went on past the failure.
        'add-destination TCP 10.0.0.100:443 -> 10.0.0.11:80 route w=1',
      ],
      failed: [
        {
          op: 'add-destination TCP 10.0.0.100:80 -> 10.0.0.12:80 route w=2',
          code: 'TG_IPVS_RANGE',
          message: 'value out of range (ERANGE)',
        },
      ],
      // New capacity failed to land: no removal runs.
      notAttempted: ['delete-service TCP 10.0.0.100:8080'],
    });
    expect(err.message).toBe(
      'apply stopped with 4 of 6 ops applied: add-destination TCP 10.0.0.100:80 -> 10.0.0.12:80 route w=2 failed: value out of range (ERANGE)',
    );
    expect(err.cause).toBeInstanceOf(TgError);
    expect(kernel.table.has('tcp/10.0.0.100:8080')).toBe(true);
    kernel.failOn = undefined;
    await applyOps(kernel, plan(desired, await kernel.listServices(), new Set()));
    expect(plan(desired, await kernel.listServices(), new Set())).toEqual([]);
  });

  it('does not send the destinations of a service whose add failed, and lists every failure of the step', async () => {
    const kernel = new FakeIpvs();
    kernel.failOn = { match: /addService/, error: new TgError('TG_IPVS_NOT_FOUND', 'no such scheduler (ENOENT)') };
    const err = await partialApply(kernel, plan(desired, [], new Set()));
    const details = err.details as PartialApplyDetails;
    expect(details.applied).toEqual([]);
    expect(details.failed.map((f) => f.op)).toEqual(['add-service TCP 10.0.0.100:80 rr', 'add-service TCP 10.0.0.100:443 rr']);
    expect(details.notAttempted).toHaveLength(3);
    expect(err.message).toMatch(/failed: no such scheduler \(ENOENT\) \(and 1 more op failed\)$/);
    expect(kernel.calls.filter((c) => c.startsWith('addDestination'))).toEqual([]);
  });
});

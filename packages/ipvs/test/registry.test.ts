import { TgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { IPVS_DRIVERS, type IpvsDriverName, openIpvsDriver } from '../src/index.ts';

// The shared suite over every registry entry: on this kernel (no IPVS) each must refuse to open with its typed error.
const EXPECTED: Record<IpvsDriverName, string> = { netlink: 'TG_IPVS_NOT_LOADED', ipvsadm: 'TG_IPVSADM_FAILED' };

describe('IPVS driver registry', () => {
  it('lists the netlink and ipvsadm drivers', () => {
    expect(Object.keys(IPVS_DRIVERS).sort()).toEqual(['ipvsadm', 'netlink']);
  });

  for (const name of Object.keys(IPVS_DRIVERS) as IpvsDriverName[]) {
    it(`${name}: opening on a kernel without IPVS fails with ${EXPECTED[name]}`, async () => {
      const err = await openIpvsDriver(name, { modprobe: false }).then(
        async (d) => {
          await d.close();
          return new Error(`${name} opened: this host test expects a kernel without IPVS`);
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TgError);
      expect((err as TgError).code).toBe(EXPECTED[name]);
    });
  }
});

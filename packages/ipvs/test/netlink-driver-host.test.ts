import { isTgError, TgError } from '@tiergate/errors';
import { describe, expect, it } from 'vitest';
import { describeIpvsErrno, ipvsErrnoError, NetlinkIpvsDriver } from '../src/index.ts';

async function openError(options: Parameters<typeof NetlinkIpvsDriver.open>[0]): Promise<TgError> {
  try {
    const driver = await NetlinkIpvsDriver.open(options);
    await driver.close();
  } catch (err) {
    if (err instanceof TgError) return err;
    throw err;
  }
  throw new Error('this host test expects a kernel WITHOUT IPVS (real-kernel tests run in the QEMU guest), but the IPVS family resolved');
}

describe('NetlinkIpvsDriver on a kernel without IPVS (this machine)', () => {
  it('fails with TG_IPVS_NOT_LOADED after trying modprobe ip_vs once', async () => {
    const err = await openError({});
    expect(err.code).toBe('TG_IPVS_NOT_LOADED');
    expect(err.message).toMatch(/generic netlink family 'IPVS' is not registered and loading the ip_vs module failed/);
    // modprobe runs for real and fails here; its complaint is kept for the operator.
    expect(String((err.details as { modprobe: string }).modprobe)).toMatch(/ip_vs/);
    expect((err.cause as { errno: number }).errno).toBe(2);
  });

  it('fails with TG_IPVS_NOT_LOADED without modprobe when disabled', async () => {
    const err = await openError({ modprobe: false });
    expect(err.code).toBe('TG_IPVS_NOT_LOADED');
    expect(err.details).toEqual({ modprobe: 'modprobe disabled' });
  });
});

describe('errno → TgError mapping', () => {
  it.each([
    [1, 'TG_IPVS_PERMISSION', /needs root or CAP_NET_ADMIN/],
    [17, 'TG_IPVS_EXISTS', /already exists/],
    [3, 'TG_IPVS_NO_SERVICE', /no such service/],
    [2, 'TG_IPVS_NOT_FOUND', /not found/],
    [34, 'TG_IPVS_RANGE', /out of range/],
    [22, 'TG_IPVS_INVALID', /invalid/],
    [19, 'TG_IPVS_KERNEL', /ENODEV/],
  ] as const)('maps errno %i to %s', (errno, code, text) => {
    expect(describeIpvsErrno(errno).code).toBe(code);
    expect(describeIpvsErrno(errno).text).toMatch(text);
  });

  it('names the op and object, keeps cause, errno and the kernel text', () => {
    const cause = new Error('low level');
    const err = ipvsErrnoError({ op: 'add destination', object: '10.0.0.11:80 to TCP 192.0.2.10:80' }, 17, cause, 'dup');
    expect(isTgError(err, 'TG_IPVS_EXISTS')).toBe(true);
    expect(err.message).toBe('add destination 10.0.0.11:80 to TCP 192.0.2.10:80: it already exists (EEXIST) (kernel: dup)');
    expect(err.cause).toBe(cause);
    expect(err.details).toMatchObject({ errno: 17, errnoName: 'EEXIST', op: 'add destination' });
  });
});

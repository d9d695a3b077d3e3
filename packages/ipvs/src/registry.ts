import type { IpvsDriver } from './driver.ts';
import { IpvsadmDriver, type IpvsadmDriverOptions } from './ipvsadm-driver.ts';
import { NetlinkIpvsDriver, type NetlinkIpvsDriverOptions } from './netlink-driver.ts';

/** Options any driver understands; each driver ignores what does not apply to it. */
export type IpvsDriverOptions = NetlinkIpvsDriverOptions & IpvsadmDriverOptions;

/** Every IPVS driver by name: `netlink` (default, generic netlink) and `ipvsadm` (the binary). */
export const IPVS_DRIVERS = {
  netlink: (options: IpvsDriverOptions = {}): Promise<IpvsDriver> => NetlinkIpvsDriver.open(options),
  ipvsadm: (options: IpvsDriverOptions = {}): Promise<IpvsDriver> => IpvsadmDriver.open(options),
} as const;

export type IpvsDriverName = keyof typeof IPVS_DRIVERS;

/** Opens a driver by registry name; fails with TG_IPVS_NOT_LOADED / TG_IPVSADM_FAILED when the kernel has no IPVS. */
export function openIpvsDriver(name: IpvsDriverName = 'netlink', options: IpvsDriverOptions = {}): Promise<IpvsDriver> {
  return IPVS_DRIVERS[name](options);
}

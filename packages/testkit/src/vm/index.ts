// The QEMU guest harness: real kernel IPVS for tests on hosts whose kernel has none (see README.md).
export { type GuestRun, type GuestRunOptions, qemuArgs, runInGuest } from './guest.ts';
export { defaultVmCacheDir, ensureInitramfs, GUEST_MODULES, type Initramfs, renderInitScript } from './initramfs.ts';
export { findGuestKernel, type GuestKernel, VM_APT_HINT } from './kernel.ts';
export { GUEST_NET, guestRealServerIp, TOPOLOGY_SH, topologyPrelude } from './topology.ts';

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TgError } from '@tiergate/errors';

/** The apt command that installs everything the guest harness needs on the host. */
export const VM_APT_HINT = 'apt-get install -y qemu-system-x86 linux-image-amd64 busybox-static ipvsadm';

/** A guest kernel on the host: the image QEMU boots and the module tree the initramfs copies from. */
export interface GuestKernel {
  readonly version: string;
  readonly vmlinuz: string;
  readonly modulesDir: string;
}

/** Compares Debian kernel versions such as `6.1.0-56-amd64` numerically, part by part. */
function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const d = /^\d+$/.test(x) && /^\d+$/.test(y) ? Number(x) - Number(y) : x.localeCompare(y);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Finds the newest `/boot/vmlinuz-<ver>` whose `/lib/modules/<ver>` has the IPVS module.
 * `TG_VM_KERNEL=<ver>` picks one explicitly. Throws TG_VM_PREREQUISITE (with the apt command)
 * when there is none: a missing kernel is a failure, never a reason to skip.
 */
export function findGuestKernel(bootDir = '/boot', modulesRoot = '/lib/modules'): GuestKernel {
  const wanted = process.env.TG_VM_KERNEL;
  const versions = (existsSync(bootDir) ? readdirSync(bootDir) : [])
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((v) => wanted === undefined || v === wanted)
    .filter((v) => existsSync(join(modulesRoot, v, 'kernel/net/netfilter/ipvs/ip_vs.ko')))
    .sort(compareVersions);
  const version = versions.at(-1);
  if (version === undefined) {
    throw new TgError(
      'TG_VM_PREREQUISITE',
      `no guest kernel with IPVS modules in ${bootDir}/vmlinuz-* + ${modulesRoot}/<ver>` +
        `${wanted === undefined ? '' : ` (TG_VM_KERNEL=${wanted})`}; install it with: ${VM_APT_HINT}`,
    );
  }
  return { version, vmlinuz: join(bootDir, `vmlinuz-${version}`), modulesDir: join(modulesRoot, version) };
}

/** Finds an executable on a fixed list of system directories, or throws TG_VM_PREREQUISITE naming the package. */
export function findProgram(name: string, debianPackage: string): string {
  for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new TgError('TG_VM_PREREQUISITE', `${name} (Debian package ${debianPackage}) is not installed; install it with: ${VM_APT_HINT}`);
}

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { TgError } from '@tiergate/errors';
import { findGuestKernel, findProgram, type GuestKernel, VM_APT_HINT } from './kernel.ts';

const run = promisify(execFile);

/**
 * Modules /init loads, in this order. crc32c_generic comes before libcrc32c (which ip_vs needs) or
 * libcrc32c fails with "unknown symbol"; the virtio/9p/overlay stack must load before the host root
 * can be mounted. Anything else the guest needs can be modprobed later from the host's /lib/modules.
 */
// biome-ignore format: one module list, easier to compare with the recipe on a few lines
export const GUEST_MODULES: readonly string[] = [
  'crc32c_generic', 'libcrc32c', 'virtio_pci', '9pnet_virtio', '9p', 'overlay', 'veth', 'bridge',
  'ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_wlc', 'ip_vs_lc', 'ip_vs_sh', 'ip_vs_mh', 'ip_vs_sed', 'ip_vs_nq',
  'ip_vs_lblc', 'ip_vs_lblcr', 'ip_vs_dh', 'ip_vs_fo', 'ip_vs_ovf', 'ipip', 'ip_gre', 'fou', 'ip_tunnel',
];

/** Bump when the layout of the initramfs changes in a way the init script's hash does not capture. */
const LAYOUT_VERSION = '1';

/** Where built initramfs images are cached: `TG_VM_CACHE`, else `<repo>/.cache/vm` (git-ignored). */
export function defaultVmCacheDir(): string {
  return process.env.TG_VM_CACHE ?? resolve(import.meta.dirname, '../../../../.cache/vm');
}

/** The guest's /init with the module list filled in (pure; its hash keys the cache). */
export function renderInitScript(modules: readonly string[] = GUEST_MODULES): string {
  const template = readFileSync(join(import.meta.dirname, 'init.sh'), 'utf8');
  return template.replace('for m in @MODULES@; do', `for m in ${modules.join(' ')}; do`);
}

/** A built initramfs image and the kernel it belongs to. */
export interface Initramfs {
  readonly path: string;
  readonly kernel: GuestKernel;
  /** False when this call built the image, true when it came from the cache. */
  readonly cached: boolean;
}

/**
 * Returns the initramfs for the newest IPVS-capable kernel, building it into `cacheDir` on first use.
 * The file name carries the kernel version and a hash of /init, the module list and busybox, so an
 * edit to any of them builds a new image; concurrent builders each stage privately and rename
 * atomically, so a reader never sees a half-written image.
 */
export async function ensureInitramfs(cacheDir = defaultVmCacheDir()): Promise<Initramfs> {
  const kernel = findGuestKernel();
  const busybox = findStaticBusybox();
  const init = renderInitScript();
  const key = createHash('sha256').update(`${LAYOUT_VERSION}\n${kernel.version}\n${busybox}\n${init}`).digest('hex').slice(0, 16);
  const path = join(cacheDir, `initrd-${kernel.version}-${key}.cpio.gz`);
  if (existsSync(path)) return { path, kernel, cached: true };
  await mkdir(cacheDir, { recursive: true });
  const stage = join(cacheDir, `stage-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await populate(stage, kernel, busybox, init);
    const tmp = `${stage}.cpio.gz`;
    // -R 0:0: files owned by root in the guest whoever built the image.
    await run('bash', ['-o', 'pipefail', '-c', `find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > '${tmp}'`], { cwd: stage });
    await rename(tmp, path);
    await pruneStaleImages(cacheDir, path);
  } catch (cause) {
    await rm(`${stage}.cpio.gz`, { force: true });
    throw new TgError('TG_VM_PREREQUISITE', `building the guest initramfs failed (needs cpio, gzip; ${VM_APT_HINT})`, { cause });
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  return { path, kernel, cached: false };
}

/** Removes images built for other kernels or older /init scripts, so the cache holds one image. */
async function pruneStaleImages(cacheDir: string, keep: string): Promise<void> {
  for (const f of await readdir(cacheDir)) {
    const p = join(cacheDir, f);
    if (/^initrd-.*\.cpio\.gz$/.test(f) && p !== keep) await rm(p, { force: true });
  }
}

/** Lays out the initramfs tree: busybox with its applet links, /init, and the modules with their dependencies. */
async function populate(stage: string, kernel: GuestKernel, busybox: string, init: string): Promise<void> {
  for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp']) await mkdir(join(stage, d), { recursive: true });
  await cp(busybox, join(stage, 'bin/busybox'));
  const { stdout } = await run(busybox, ['--list']);
  for (const applet of stdout.split('\n').filter((a) => a !== '' && a !== 'busybox')) {
    await symlink('busybox', join(stage, 'bin', applet));
  }
  await writeFile(join(stage, 'init'), init);
  await chmod(join(stage, 'init'), 0o755);
  const modDir = join(stage, 'lib/modules', kernel.version);
  await mkdir(modDir, { recursive: true });
  for (const f of await readdir(kernel.modulesDir)) {
    if (f.startsWith('modules.')) await cp(join(kernel.modulesDir, f), join(modDir, f));
  }
  for (const file of await moduleClosure(kernel, GUEST_MODULES)) {
    const dest = join(modDir, relative(kernel.modulesDir, file));
    await mkdir(dirname(dest), { recursive: true });
    await cp(file, dest);
  }
}

/**
 * The .ko files of `modules` and everything they depend on (hard and soft dependencies), as the
 * host's kmod resolves them against the guest kernel's tree. Copying only this closure instead of
 * whole trees keeps the image ~10x smaller, which matters because TCG unpacks it slowly. A module
 * the kernel does not have is left out here and logged by /init when its modprobe fails.
 */
async function moduleClosure(kernel: GuestKernel, modules: readonly string[]): Promise<string[]> {
  const modprobe = findProgram('modprobe', 'kmod');
  const files = new Set<string>();
  for (const m of modules) {
    const out = await run(modprobe, ['-S', kernel.version, '--show-depends', m]).catch(() => ({ stdout: '' }));
    for (const line of out.stdout.split('\n')) {
      const match = /^insmod (\S+\.ko(?:\.[gx]z|\.zst)?)/.exec(line);
      if (match?.[1] !== undefined) files.add(match[1]);
    }
  }
  return [...files];
}

/** Finds busybox and insists it is static: the initramfs has no libc for a dynamic one. */
function findStaticBusybox(): string {
  const busybox = findProgram('busybox', 'busybox-static');
  // A dynamic ELF names its loader (PT_INTERP) near the start of the file.
  if (readFileSync(busybox).subarray(0, 4096).includes('/lib64/ld-linux')) {
    throw new TgError('TG_VM_PREREQUISITE', `${busybox} is dynamically linked; install busybox-static: ${VM_APT_HINT}`);
  }
  return busybox;
}

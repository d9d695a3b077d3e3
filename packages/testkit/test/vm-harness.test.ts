import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTgError } from '@tiergate/errors';
import { afterEach, describe, expect, it } from 'vitest';
import { findGuestKernel, GUEST_MODULES, qemuArgs, renderInitScript, runInGuest } from '../src/index.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tg-vm-test-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('guest kernel discovery', () => {
  it('fails with TG_VM_PREREQUISITE and the apt command when no kernel has IPVS', () => {
    const root = tempDir();
    mkdirSync(join(root, 'boot'));
    writeFileSync(join(root, 'boot/vmlinuz-6.1.0-9-amd64'), '');
    let caught: unknown;
    try {
      findGuestKernel(join(root, 'boot'), join(root, 'modules'));
    } catch (err) {
      caught = err;
    }
    expect(isTgError(caught, 'TG_VM_PREREQUISITE')).toBe(true);
    expect((caught as Error).message).toContain('apt-get install -y qemu-system-x86 linux-image-amd64');
  });

  it('picks the newest kernel that has the ip_vs module', () => {
    const root = tempDir();
    for (const v of ['6.1.0-9-amd64', '6.1.0-56-amd64', '6.10.0-1-amd64']) writeFileSync(join(root, `vmlinuz-${v}`), '');
    for (const v of ['6.1.0-9-amd64', '6.1.0-56-amd64']) {
      mkdirSync(join(root, v, 'kernel/net/netfilter/ipvs'), { recursive: true });
      writeFileSync(join(root, v, 'kernel/net/netfilter/ipvs/ip_vs.ko'), '');
    }
    expect(findGuestKernel(root, root)).toEqual({
      version: '6.1.0-56-amd64',
      vmlinuz: join(root, 'vmlinuz-6.1.0-56-amd64'),
      modulesDir: join(root, '6.1.0-56-amd64'),
    });
  });
});

describe('guest boot configuration', () => {
  it('loads crc32c_generic before libcrc32c and ip_vs, and powers off at the end', () => {
    const init = renderInitScript();
    const loop = init.split('\n').find((l) => l.startsWith('for m in '));
    expect(loop).toBe(`for m in ${GUEST_MODULES.join(' ')}; do`);
    expect(GUEST_MODULES.indexOf('crc32c_generic')).toBeLessThan(GUEST_MODULES.indexOf('libcrc32c'));
    expect(GUEST_MODULES.indexOf('libcrc32c')).toBeLessThan(GUEST_MODULES.indexOf('ip_vs'));
    expect(init).toContain('poweroff -f');
  });

  it('boots with TCG, shares the host root read-only and the scratch dir read-write', () => {
    const args = qemuArgs('/boot/vmlinuz-x', '/c/initrd.gz', '/tmp/s', { memoryMb: 1024 }).join(' ');
    expect(args).toContain('-accel tcg');
    expect(args).not.toContain('kvm');
    // V8 aborted once in the guest on QEMU's emulated memory protection keys (see guest.ts).
    expect(args).toContain('-cpu max,pku=off');
    expect(args).toContain('-m 1024');
    expect(args).toContain('local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap,readonly=on');
    expect(args).toContain('local,path=/tmp/s,mount_tag=work,security_model=none,multidevs=remap -net none');
  });
});

describe('guest timeouts', () => {
  it('kills QEMU when the guest overruns its time limit, throws TG_VM_FAILED and removes the scratch dir', async () => {
    let caught: unknown;
    try {
      await runInGuest({ script: 'sleep 600', timeoutMs: 1_500 });
    } catch (err) {
      caught = err;
    }
    expect(isTgError(caught, 'TG_VM_FAILED'), String(caught)).toBe(true);
    expect((caught as Error).message).toContain('timed out after 1500 ms');
    const { scratchDir } = (caught as { details: { scratchDir: string } }).details;
    expect(existsSync(scratchDir)).toBe(false);
  }, 30_000);
});

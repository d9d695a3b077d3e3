import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { HostChanges } from '../src/host-setup.ts';

/**
 * The director's VIP step on a real kernel: each case runs setupDirectorVips (the real `ip` commands) in a
 * fresh network namespace of its own (netns-vip-child.ts under `unshare --net`), so it can add addresses
 * without touching this host. IPVS is not needed for this step (the rest of host setup runs in the QEMU guest).
 */
const execFileAsync = promisify(execFile);
const CHILD = join(import.meta.dirname, 'netns-vip-child.ts');

interface Outcome {
  first: HostChanges;
  second: HostChanges;
  addresses: string[];
}

async function inFreshNetns(director: Record<string, unknown>, present: string[] = []): Promise<Outcome> {
  // root (CI) unshares the network alone; anyone else needs a user namespace to hold CAP_NET_ADMIN in it.
  const unshare = process.getuid?.() === 0 ? ['--net'] : ['--user', '--map-root-user', '--net'];
  const arg = JSON.stringify({ director: { name: 'd1', interface: 'eth0', ...director }, present });
  const { stdout } = await execFileAsync('unshare', [...unshare, process.execPath, CHILD, arg], { timeout: 20_000 });
  return JSON.parse(stdout) as Outcome;
}

const VIPS = ['10.0.0.100', '2001:db8::100'];
const SYNC = { state: 'backup', interface: 'eth0', sync_id: 1 };

describe('director VIPs (setupDirectorVips in a network namespace)', () => {
  it('the director owns them by default: adds each as /32 or /128 on the interface, once', async () => {
    const r = await inFreshNetns({ vips: VIPS });
    expect(r.first).toEqual({ changes: ['ip addr add 10.0.0.100/32 dev eth0', 'ip addr add 2001:db8::100/128 dev eth0'], notes: [] });
    expect(r.second).toEqual({ changes: [], notes: [] });
    expect(r.addresses.sort()).toEqual(['10.0.0.100/32', '2001:db8::100/128']);
  });

  it('vip_owner: keepalived: adds none, and says each is left to keepalived', async () => {
    const r = await inFreshNetns({ vips: VIPS, vip_owner: 'keepalived' });
    const notes = VIPS.map((v) => `VIP ${v} left to keepalived (vip_owner: keepalived): not held on eth0 now`);
    expect(r.first).toEqual({ changes: [], notes });
    expect(r.second).toEqual({ changes: [], notes });
    expect(r.addresses).toEqual([]);
  });

  it('a VIP keepalived holds now (MASTER) is neither removed nor added again', async () => {
    const r = await inFreshNetns({ vips: ['10.0.0.100'], vip_owner: 'keepalived' }, ['10.0.0.100/32']);
    expect(r.first).toEqual({ changes: [], notes: ['VIP 10.0.0.100 left to keepalived (vip_owner: keepalived): held on eth0 now'] });
    expect(r.addresses).toEqual(['10.0.0.100/32']);
  });

  it('with a sync_daemon (a failover pair) keepalived is the default owner; vip_owner: director overrides it', async () => {
    const pair = await inFreshNetns({ vips: ['10.0.0.100'], sync_daemon: SYNC });
    expect(pair.first).toEqual({
      changes: [],
      notes: ['VIP 10.0.0.100 left to keepalived (vip_owner: keepalived, the default with a sync_daemon): not held on eth0 now'],
    });
    expect(pair.addresses).toEqual([]);
    const explicit = await inFreshNetns({ vips: ['10.0.0.100'], sync_daemon: SYNC, vip_owner: 'director' });
    expect(explicit.first).toEqual({ changes: ['ip addr add 10.0.0.100/32 dev eth0'], notes: [] });
    expect(explicit.addresses).toEqual(['10.0.0.100/32']);
  });
});

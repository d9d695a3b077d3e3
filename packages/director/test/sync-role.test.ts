import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { validateConfig } from '@tiergate/config';
import type { IpvsDaemon } from '@tiergate/ipvs';
import { describe, expect, it } from 'vitest';
import { planSyncDaemons, wantedSyncDaemon } from '../src/host-setup.ts';
import { formatHaStatus, readVrrpState } from '../src/sync-role.ts';

const execFileAsync = promisify(execFile);
const CHILD = join(import.meta.dirname, 'netns-sync-role-child.ts');
const SYNC = { state: 'backup', interface: 'eth0', sync_id: 1 } as const;
const director = (extra: Record<string, unknown>) => {
  const [d] = validateConfig({ version: 1, directors: [{ name: 'lb2', interface: 'eth0', vips: ['10.0.0.100'], ...extra }] }).directors;
  if (!d) throw new Error('no director');
  return d;
};
const daemon = (state: 'master' | 'backup', more: Partial<IpvsDaemon> = {}): IpvsDaemon => ({
  state,
  interface: 'eth0',
  syncId: 1,
  ...more,
});

describe('sync daemon role of a VRRP pair (pure)', () => {
  it('follows the VIP with keepalived owning it: master while held, backup otherwise, whatever `state` says', () => {
    const pair = director({ sync_daemon: SYNC });
    expect(wantedSyncDaemon(pair, true)).toEqual(daemon('master'));
    expect(wantedSyncDaemon(pair, false)).toEqual(daemon('backup'));
  });

  it('keeps the configured state without VRRP (vip_owner: director), and nothing without a sync_daemon', () => {
    expect(wantedSyncDaemon(director({ sync_daemon: SYNC, vip_owner: 'director' }), true)).toEqual(daemon('backup'));
    expect(wantedSyncDaemon(director({}), true)).toBeUndefined();
  });

  it('plans a switch as stop-the-other then start, and nothing once applied', () => {
    expect(planSyncDaemons(daemon('master'), [daemon('backup')], true)).toEqual({ stop: ['backup'], start: daemon('master') });
    expect(planSyncDaemons(daemon('master'), [daemon('master')], true)).toEqual({ stop: [] });
    expect(planSyncDaemons(daemon('backup'), [], true)).toEqual({ stop: [], start: daemon('backup') });
    // Both running (started by hand): the pair keeps one role only.
    expect(planSyncDaemons(daemon('backup'), [daemon('master'), daemon('backup')], true)).toEqual({ stop: ['master'] });
  });

  it('restarts a daemon of the right role on another interface or sync id; leaves the other role alone when not exclusive', () => {
    expect(planSyncDaemons(daemon('master'), [daemon('master', { syncId: 7 })], true)).toEqual({
      stop: ['master'],
      start: daemon('master'),
    });
    expect(planSyncDaemons(daemon('backup'), [daemon('master')], false)).toEqual({ stop: [], start: daemon('backup') });
  });
});

describe('SyncRoleFollower in a network namespace (real ip monitor, in-memory daemon table)', () => {
  it('switches to master when keepalived adds the VIP and back to backup when it removes it', async () => {
    const unshare = process.getuid?.() === 0 ? ['--net'] : ['--user', '--map-root-user', '--net'];
    const arg = JSON.stringify({ director: { name: 'lb2', interface: 'eth0', vips: ['10.0.0.100'], sync_daemon: SYNC } });
    const { stdout } = await execFileAsync('unshare', [...unshare, process.execPath, CHILD, arg], { timeout: 20_000 });
    const r = JSON.parse(stdout) as { atStart: string; asMaster: string; asBackup: string; log: string[] };
    expect(r).toMatchObject({ atStart: 'backup', asMaster: 'master', asBackup: 'backup' });
    expect(r.log).toEqual(['start backup', 'stop backup', 'start master', 'stop master', 'start backup']);
  });
});

describe('HA status', () => {
  it("reads keepalived's state from the notify script's file, with its time", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-vrrp-'));
    try {
      const file = join(dir, 'vrrp-lb1.state');
      writeFileSync(file, 'MASTER\n');
      utimesSync(file, new Date('2026-12-06T07:00:00Z'), new Date('2026-12-06T07:00:00Z'));
      expect(await readVrrpState(file)).toEqual({ state: 'MASTER', since: '2026-12-06T07:00:00.000Z' });
      expect(await readVrrpState(join(dir, 'missing'))).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints the VRRP role, the VIP and the kernel sync daemons', () => {
    const text = formatHaStatus({
      vipOwner: 'keepalived',
      vips: [{ address: '10.0.0.100', held: true }],
      vrrp: { state: 'MASTER', since: '2026-12-06T07:00:00.000Z' },
      syncDaemons: [daemon('master')],
      wantedSync: 'master',
    });
    expect(text).toBe(
      'VRRP: MASTER since 2026-12-06T07:00:00.000Z; VIP (keepalived): 10.0.0.100 held\nsync daemon: master on eth0 id 1 (wanted: master)\n',
    );
    const stale = formatHaStatus({
      vipOwner: 'keepalived',
      vips: [{ address: '10.0.0.100', held: false }],
      vrrp: { state: 'MASTER', since: '2026-12-06T07:00:00.000Z' },
      syncDaemons: [daemon('backup')],
      wantedSync: 'backup',
    });
    expect(stale.split('\n')[0]).toBe(
      'VRRP: MASTER since 2026-12-06T07:00:00.000Z (recorded; no VIP here now: keepalived stopped without a notify?); VIP (keepalived): 10.0.0.100 not held',
    );
    expect(formatHaStatus({ vipOwner: 'keepalived', vips: [], vrrp: null, syncDaemons: { error: 'EPERM' }, wantedSync: null })).toBe(
      'VRRP: unknown (no keepalived notify state file); VIP (keepalived): none\nsync daemon: unknown (EPERM)\n',
    );
  });
});

/**
 * Child of sync-role.test.ts, run under `unshare --net` so it owns a fresh network namespace: makes an eth0 (a
 * veth), runs the SyncRoleFollower with an in-memory sync-daemon table (the host has no IPVS; the deployed pair
 * of test/stack-vm.test.ts, in the QEMU guest, has the kernel's), then moves the VIP onto eth0 and off again as
 * keepalived does on MASTER and BACKUP, and prints the daemon table after each step. The follower's interval is
 * far longer than the run, so only the address events (`ip monitor`) can explain a switch.
 */
import { validateConfig } from '@tiergate/config';
import type { IpvsDaemon, IpvsDaemonState } from '@tiergate/ipvs';
import { ip } from '../src/host-setup.ts';
import { silentLogger } from '../src/logger.ts';
import { SyncRoleFollower } from '../src/sync-role.ts';

const { director } = JSON.parse(process.argv[2] ?? '{}') as { director: Record<string, unknown> };
await ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
await ip(['link', 'set', 'eth0', 'up']);
const [validated] = validateConfig({ version: 1, directors: [director] }).directors;
if (!validated) throw new Error('no director entry');

let daemons: IpvsDaemon[] = [];
const log: string[] = [];
const driver = {
  listDaemons: async () => daemons.map((d) => ({ ...d })),
  startDaemon: async (d: IpvsDaemon) => {
    if (daemons.some((x) => x.state === d.state)) throw new Error(`EEXIST ${d.state}`);
    daemons.push(d);
    log.push(`start ${d.state}`);
  },
  stopDaemon: async (state: IpvsDaemonState) => {
    daemons = daemons.filter((d) => d.state !== state);
    log.push(`stop ${state}`);
  },
};
const roles = () => daemons.map((d) => d.state).join(',');
const until = async (want: string) => {
  for (let i = 0; i < 100 && roles() !== want; i++) await new Promise((r) => setTimeout(r, 50));
  return roles();
};

const follower = new SyncRoleFollower({ director: validated, services: () => [], driver, logger: silentLogger, intervalMs: 600_000 });
await follower.start();
const atStart = roles();
await ip(['addr', 'add', '10.0.0.100/32', 'dev', 'eth0']);
const asMaster = await until('master');
await ip(['addr', 'del', '10.0.0.100/32', 'dev', 'eth0']);
const asBackup = await until('backup');
await follower.stop();
process.stdout.write(JSON.stringify({ atStart, asMaster, asBackup, log, daemons }));

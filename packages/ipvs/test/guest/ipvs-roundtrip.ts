#!/usr/bin/env node
/**
 * Runs inside a guest whose kernel has IPVS (as root): writes services of every kind through the
 * netlink driver, reads them back (netlink, `ipvsadm -S -n`, the ipvsadm driver), exercises updates,
 * errno paths, counters, timeouts and the sync daemon, then rewrites the table through ipvsadm
 * (`-R`) and reads it back over netlink. Prints the `ipvsadm -S -n` of the netlink-written table
 * between markers and a JSON summary as the last line; exits 1 on any mismatch.
 */
import { execFileSync } from 'node:child_process';
import { writeSync } from 'node:fs';
import { isTgError } from '@tiergate/errors';
import {
  IpvsadmDriver,
  type IpvsDestination,
  type IpvsDriver,
  type IpvsOp,
  type IpvsService,
  type IpvsServiceEntry,
  NetlinkIpvsDriver,
  parseIpvsadmSave,
  sameDestination,
  sameService,
  serviceKey,
} from '../../src/index.ts';

const none = { persistent: false, onePacket: false, schedFlags: [] };
const v4 = { family: 'inet', netmask: '255.255.255.255', timeout: 0 } as const;
const dest = (address: string, port: number, forward: IpvsDestination['forward'], weight: number, extra: Partial<IpvsDestination> = {}) =>
  ({
    address,
    port,
    family: address.includes(':') ? 'inet6' : 'inet',
    forward,
    weight,
    upperThreshold: 0,
    lowerThreshold: 0,
    ...extra,
  }) as IpvsDestination;

/** The desired table: every service kind the director uses. */
export const DESIRED: IpvsServiceEntry[] = [
  {
    service: { ...v4, protocol: 'tcp', address: '10.99.0.100', port: 80, scheduler: 'wrr', flags: none },
    destinations: [dest('10.99.0.11', 80, 'route', 3), dest('10.99.0.12', 80, 'route', 1, { upperThreshold: 100, lowerThreshold: 50 })],
  },
  {
    service: { ...v4, protocol: 'udp', address: '10.99.0.100', port: 53, scheduler: 'rr', flags: { ...none, onePacket: true } },
    destinations: [dest('10.99.0.11', 5353, 'masq', 1)],
  },
  {
    service: { ...v4, fwmark: 7, scheduler: 'wrr', flags: none },
    destinations: [dest('10.99.0.13', 0, 'tunnel', 5, { tunnel: { type: 'ipip', port: 0, checksum: 'nocsum' } })],
  },
  {
    service: {
      ...v4,
      protocol: 'tcp',
      address: '10.99.0.100',
      port: 443,
      scheduler: 'mh',
      flags: { ...none, schedFlags: ['mh-fallback', 'mh-port'] },
    },
    destinations: [
      dest('10.99.0.11', 443, 'tunnel', 10, { tunnel: { type: 'gue', port: 6080, checksum: 'remcsum' } }),
      dest('10.99.0.12', 443, 'tunnel', 10, { tunnel: { type: 'gre', port: 0, checksum: 'csum' } }),
    ],
  },
  {
    service: {
      ...v4,
      protocol: 'tcp',
      address: '10.99.0.101',
      port: 80,
      scheduler: 'wlc',
      flags: { ...none, persistent: true },
      timeout: 600,
      netmask: '255.255.255.0',
    },
    destinations: [dest('10.99.0.11', 80, 'route', 1)],
  },
  {
    service: {
      ...v4,
      protocol: 'tcp',
      address: '10.99.0.102',
      port: 80,
      scheduler: 'sh',
      flags: { ...none, schedFlags: ['sh-fallback', 'sh-port'] },
    },
    destinations: [dest('10.99.0.11', 8080, 'masq', 2), dest('10.99.0.12', 8080, 'masq', 2)],
  },
  {
    service: { ...v4, protocol: 'sctp', address: '10.99.0.100', port: 5000, scheduler: 'rr', flags: none },
    destinations: [dest('10.99.0.11', 5000, 'route', 1)],
  },
  {
    service: {
      family: 'inet6',
      protocol: 'tcp',
      address: '2001:db8::100',
      port: 443,
      scheduler: 'rr',
      flags: { ...none, persistent: true },
      timeout: 300,
      netmask: 64,
    },
    destinations: [dest('2001:db8::11', 443, 'route', 1)],
  },
  {
    service: { family: 'inet6', fwmark: 8, scheduler: 'rr', flags: none, timeout: 0, netmask: 128 },
    destinations: [dest('2001:db8::12', 0, 'tunnel', 1, { tunnel: { type: 'ipip', port: 0, checksum: 'nocsum' } })],
  },
];

interface Check {
  name: string;
  ok: boolean;
  detail?: string;
}
const checks: Check[] = [];
/** Progress on stderr, written synchronously so a crash still shows the last phase reached. */
const phase = (name: string) => writeSync(2, `phase: ${name}\n`);
const check = (name: string, ok: boolean, detail?: unknown) => {
  checks.push(ok ? { name, ok } : { name, ok, detail: typeof detail === 'string' ? detail : json(detail) });
};
const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

/** Compares a listing with the desired table; `ignoreThresholds` for `ipvsadm -S`, which cannot print them. */
function compareTable(name: string, actual: IpvsServiceEntry[], desired: IpvsServiceEntry[], ignoreThresholds = false) {
  check(`${name}: service count`, actual.length === desired.length, { actual: actual.map((e) => serviceKey(e.service)) });
  for (const want of desired) {
    const got = actual.find((e) => serviceKey(e.service) === serviceKey(want.service));
    const key = serviceKey(want.service);
    check(`${name}: ${key} settings`, got !== undefined && sameService(got.service, want.service), {
      want: want.service,
      got: got?.service,
    });
    check(`${name}: ${key} destination count`, got?.destinations.length === want.destinations.length, got?.destinations);
    for (const d of want.destinations) {
      const w = ignoreThresholds ? { ...d, upperThreshold: 0, lowerThreshold: 0 } : d;
      const match = got?.destinations.find((g) => sameDestination(g, w));
      check(`${name}: ${key} destination ${d.address}:${d.port}`, match !== undefined, { want: w, got: got?.destinations });
    }
  }
}

async function expectCode(name: string, code: string, fn: () => Promise<unknown>) {
  try {
    await fn();
    check(name, false, `expected ${code}, but it succeeded`);
  } catch (err) {
    check(name, isTgError(err) && err.code === code, isTgError(err) ? `${err.code}: ${err.message}` : String(err));
  }
}

function addOps(table: IpvsServiceEntry[]): IpvsOp[] {
  return table.flatMap((e): IpvsOp[] => [
    { kind: 'add-service', service: e.service },
    ...e.destinations.map((destination): IpvsOp => ({ kind: 'add-destination', service: e.service, destination })),
  ]);
}

async function writeTable(driver: IpvsDriver, table: IpvsServiceEntry[]) {
  for (const e of table) {
    await driver.addService(e.service);
    for (const d of e.destinations) await driver.addDestination(e.service, d);
  }
}

const ipvsadm = (...args: string[]) => execFileSync('ipvsadm', args, { encoding: 'utf8' });
const first = DESIRED[0] as IpvsServiceEntry;
const svc80 = first.service as IpvsService;

async function errorPaths(nl: NetlinkIpvsDriver) {
  await expectCode('add existing service → EXISTS', 'TG_IPVS_EXISTS', () => nl.addService(svc80));
  await expectCode('add existing destination → EXISTS', 'TG_IPVS_EXISTS', () =>
    nl.addDestination(svc80, first.destinations[0] as IpvsDestination),
  );
  const ghost: IpvsService = { ...v4, protocol: 'tcp', address: '10.99.0.100', port: 81, scheduler: 'wrr', flags: none };
  await expectCode('delete missing service → NO_SERVICE', 'TG_IPVS_NO_SERVICE', () => nl.deleteService(ghost));
  await expectCode('list destinations of missing service → NO_SERVICE', 'TG_IPVS_NO_SERVICE', () => nl.listDestinations(ghost));
  check('getService of missing service → undefined', (await nl.getService(ghost)) === undefined);
  await expectCode('delete missing destination → NOT_FOUND', 'TG_IPVS_NOT_FOUND', () =>
    nl.deleteDestination(svc80, { address: '10.99.0.99', port: 80, family: 'inet' }),
  );
  await expectCode('unknown scheduler → NOT_FOUND', 'TG_IPVS_NOT_FOUND', () => nl.addService({ ...ghost, scheduler: 'nosuch' }));
  await expectCode('weight 2^31 → RANGE', 'TG_IPVS_RANGE', () => nl.addDestination(svc80, dest('10.99.0.14', 80, 'route', 2 ** 31)));
  await expectCode('lower threshold above upper → RANGE', 'TG_IPVS_RANGE', () =>
    nl.addDestination(svc80, dest('10.99.0.14', 80, 'route', 1, { upperThreshold: 5, lowerThreshold: 9 })),
  );
  await expectCode('multicast destination address → INVALID', 'TG_IPVS_INVALID', () =>
    nl.addDestination(svc80, dest('224.0.0.5', 80, 'route', 1)),
  );
}

async function updates(nl: NetlinkIpvsDriver) {
  const got = await nl.getService(svc80);
  check('getService returns the service with stats', got !== undefined && sameService(got, svc80) && got.stats !== undefined, got);
  await nl.updateService({ ...svc80, scheduler: 'rr', flags: { ...none, persistent: true }, timeout: 120 });
  const upd = await nl.getService(svc80);
  check('updateService changes scheduler and persistence', upd?.scheduler === 'rr' && upd.flags.persistent && upd.timeout === 120, upd);
  await nl.updateService(svc80);
  await nl.updateDestination(svc80, { ...(first.destinations[0] as IpvsDestination), weight: 0 });
  const dests = await nl.listDestinations(svc80);
  check('updateDestination sets weight 0 (drain)', dests.find((d) => d.address === '10.99.0.11')?.weight === 0, dests);
  await nl.updateDestination(svc80, first.destinations[0] as IpvsDestination);
  await nl.zero(svc80);
  await nl.zero();
  const info = await nl.info();
  check('info: version 1.2.1 and a connection table size', info.version === '1.2.1' && info.connTabSize > 0, info);
  await nl.setTimeouts({ tcp: 1000, tcpFin: 60, udp: 30 });
  check('timeouts round trip', json(await nl.getTimeouts()) === json({ tcp: 1000, tcpFin: 60, udp: 30 }));
  await nl.setTimeouts({ udp: 45 });
  check('timeout 0 keeps the current value', json(await nl.getTimeouts()) === json({ tcp: 1000, tcpFin: 60, udp: 45 }));
}

async function daemons(nl: NetlinkIpvsDriver, adm: IpvsadmDriver) {
  await nl.startDaemon({ state: 'master', interface: 'tgsync0', syncId: 5 });
  await nl.startDaemon({ state: 'backup', interface: 'tgsync0', syncId: 5, port: 8850, ttl: 2 });
  const list = await nl.listDaemons();
  check(
    'two sync daemons listed',
    list.length === 2 && list.some((d) => d.state === 'master' && d.syncId === 5 && d.interface === 'tgsync0'),
    list,
  );
  const viaAdm = await adm.listDaemons();
  check('ipvsadm sees the same daemons', viaAdm.length === 2 && viaAdm.some((d) => d.state === 'backup' && d.port === 8850), viaAdm);
  await expectCode('start a running daemon → EXISTS', 'TG_IPVS_EXISTS', () =>
    nl.startDaemon({ state: 'master', interface: 'tgsync0', syncId: 5 }),
  );
  await nl.stopDaemon('master');
  await nl.stopDaemon('backup');
  check('daemons stopped', (await nl.listDaemons()).length === 0);
  await expectCode('stop a stopped daemon → NO_SERVICE (ESRCH)', 'TG_IPVS_NO_SERVICE', () => nl.stopDaemon('master'));
}

async function main() {
  phase('network setup');
  // NEW_DEST of an IPv4 address fails with EINVAL while the netns has no IPv4 address at all: the
  // kernel's address-type check finds no local FIB table and calls every address "broadcast".
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  // The sync daemon needs a multicast-capable interface with an IPv4 address.
  execFileSync('ip', ['link', 'add', 'tgsync0', 'type', 'veth', 'peer', 'name', 'tgsync1']);
  execFileSync('ip', ['addr', 'add', '10.98.0.1/24', 'dev', 'tgsync0']);
  execFileSync('ip', ['link', 'set', 'tgsync1', 'up']);
  execFileSync('ip', ['link', 'set', 'tgsync0', 'up']);
  phase('open drivers');
  await using nl = await NetlinkIpvsDriver.open();
  const adm = await IpvsadmDriver.open();
  await nl.flush();
  phase('netlink writes');
  await writeTable(nl, DESIRED);
  phase('read back');
  compareTable('netlink write → netlink read', await nl.listServices(), DESIRED);
  const save = ipvsadm('-S', '-n');
  compareTable('netlink write → ipvsadm -S -n', parseIpvsadmSave(save), DESIRED, true);
  compareTable('netlink write → ipvsadm driver', await adm.listServices(), DESIRED);
  phase('error paths');
  await errorPaths(nl);
  phase('updates');
  await updates(nl);
  compareTable('after updates and failed writes', await nl.listServices(), DESIRED);
  phase('sync daemons');
  await daemons(nl, adm);
  phase('ipvsadm writes');
  await nl.flush();
  check('flush empties the table', (await nl.listServices()).length === 0);
  await adm.restore(addOps(DESIRED));
  compareTable('ipvsadm -R write → netlink read', await nl.listServices(), DESIRED);
  await adm.deleteDestination(svc80, first.destinations[1] as IpvsDestination);
  check('ipvsadm driver deletes a destination', (await nl.listDestinations(svc80)).length === 1);
  await adm.addDestination(svc80, first.destinations[1] as IpvsDestination);
  const failures = checks.filter((c) => !c.ok);
  process.stdout.write(`--- ipvsadm -S -n ---\n${save}--- end ---\n`);
  process.stdout.write(`${json({ ok: failures.length === 0, checks: checks.length, failures, names: checks.map((c) => c.name) })}\n`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  process.stdout.write(
    `${json({ ok: false, checks: checks.length, failures: [...checks.filter((c) => !c.ok), { name: 'crash', ok: false, detail: String(err) }] })}\n`,
  );
  console.error(err);
  process.exitCode = 2;
});

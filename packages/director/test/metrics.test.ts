import { once } from 'node:events';
import { createServer } from 'node:net';
import { validateConfig } from '@tiergate/config';
import { TgError } from '@tiergate/errors';
import type { IpvsDaemon, IpvsDestination, IpvsService, IpvsServiceEntry, IpvsStats } from '@tiergate/ipvs';
import { promtoolCheckMetrics } from '@tiergate/testkit';
import { describe, expect, it } from 'vitest';
import { startAdminServer } from '../src/admin-server.ts';
import type { VirtualService } from '../src/desired.ts';
import { DirectorMetrics } from '../src/metrics.ts';
import { Director } from '../src/reconciler.ts';
import { MemoryStateStore } from '../src/state-store.ts';
import type { HaStatus } from '../src/sync-role.ts';
import { FakeIpvs } from './fake-ipvs.ts';

// The director's /metrics: what `ipvsadm -Ln --stats` shows (the kernel's own counters), weights, health and the
// reconcile loop, as Prometheus text that Prometheus' own linter (`promtool check metrics`) accepts.

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** The samples of a Prometheus text exposition (label values here have no escapes). */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** The series of metric `name` as `label=value,… → value` (labels in exposition order), to compare whole families. */
function family(text: string, name: string): Record<string, number> {
  return Object.fromEntries(
    samples(text)
      .filter((s) => s.name === name)
      .map((s) => [
        Object.entries(s.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
        s.value,
      ]),
  );
}

function config(services: unknown[]): VirtualService[] {
  return validateConfig({ version: 1, virtual_services: services }).virtual_services as VirtualService[];
}

/** Stats as IPVS keeps them: `n` connections of `n * 10` packets each way, `n * 1000` bytes in, `n * 5000` out. */
function stats(n: number): IpvsStats {
  const b = BigInt(n);
  return {
    conns: b,
    inPkts: b * 10n,
    outPkts: b * 10n,
    inBytes: b * 1000n,
    outBytes: b * 5000n,
    cps: 1n,
    inPps: 2n,
    outPps: 2n,
    inBps: 3n,
    outBps: 3n,
  };
}

const svc = (address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp', scheduler = 'wrr'): IpvsService => ({
  family: 'inet',
  protocol,
  address,
  port,
  scheduler,
  flags: { persistent: false, onePacket: false, schedFlags: [] },
  timeout: 0,
  netmask: '255.255.255.255',
});
const dest = (address: string, port: number, weight: number, conns: [number, number], s?: IpvsStats): IpvsDestination => ({
  address,
  port,
  family: 'inet',
  forward: 'masq',
  weight,
  upperThreshold: 0,
  lowerThreshold: 0,
  activeConns: conns[0],
  inactConns: conns[1],
  persistConns: 0,
  ...(s ? { stats: s } : {}),
});

// Two configured services (one named, one known by its key) and a foreign one that tiergate does not manage.
const SERVICES = config([
  {
    name: 'web',
    address: '10.0.0.100',
    port: 80,
    forwarding: 'nat',
    scheduler: 'wrr',
    real_servers: [
      { address: '10.0.0.11', port: 8080, weight: 3 },
      { address: '10.0.0.12', port: 8080, weight: 2 },
    ],
  },
  { address: '10.0.0.101', port: 53, protocol: 'udp', forwarding: 'nat', scheduler: 'rr', real_servers: [{ address: '10.0.0.21' }] },
]);
const TABLE: IpvsServiceEntry[] = [
  {
    service: { ...svc('10.0.0.100', 80), stats: stats(7) },
    // 10.0.0.12 is down: quiesced at weight 0 while its connections finish.
    destinations: [dest('10.0.0.11', 8080, 3, [4, 2], stats(5)), dest('10.0.0.12', 8080, 0, [1, 0], stats(2))],
  },
  { service: { ...svc('10.0.0.101', 53, 'udp', 'rr'), stats: stats(1) }, destinations: [dest('10.0.0.21', 53, 1, [0, 1], stats(1))] },
  { service: { ...svc('10.99.0.200', 80), stats: stats(100) }, destinations: [dest('10.99.0.1', 80, 1, [9, 9], stats(100))] },
];
const WEB = 'service=web,vip=10.0.0.100,port=80,protocol=tcp';
const DNS = 'service=udp/10.0.0.101:53,vip=10.0.0.101,port=53,protocol=udp';

describe('DirectorMetrics: the IPVS table as metrics', () => {
  it('per service and real server: the kernel counters, connections, weights and health, and promtool accepts the text', async () => {
    const m = new DirectorMetrics({ version: '9.9.9' });
    m.update({
      table: TABLE,
      services: SERVICES,
      health: new Map([
        ['tcp/10.0.0.100:80 10.0.0.11:8080', true],
        ['tcp/10.0.0.100:80 10.0.0.12:8080', false],
      ]),
    });
    const text = await m.registry.metrics();

    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
    // ipvsadm -Ln --stats, service lines (the foreign 10.99.0.200 is not tiergate's: not exported).
    expect(family(text, 'tiergate_director_service_connections_total')).toEqual({ [WEB]: 7, [DNS]: 1 });
    expect(family(text, 'tiergate_director_service_incoming_packets_total')).toEqual({ [WEB]: 70, [DNS]: 10 });
    expect(family(text, 'tiergate_director_service_outgoing_packets_total')).toEqual({ [WEB]: 70, [DNS]: 10 });
    expect(family(text, 'tiergate_director_service_incoming_bytes_total')).toEqual({ [WEB]: 7000, [DNS]: 1000 });
    expect(family(text, 'tiergate_director_service_outgoing_bytes_total')).toEqual({ [WEB]: 35000, [DNS]: 5000 });
    // … real-server lines.
    const rs1 = `${WEB},server=10.0.0.11:8080`;
    const rs2 = `${WEB},server=10.0.0.12:8080`;
    const rs3 = `${DNS},server=10.0.0.21:53`;
    expect(family(text, 'tiergate_director_realserver_connections_total')).toEqual({ [rs1]: 5, [rs2]: 2, [rs3]: 1 });
    expect(family(text, 'tiergate_director_realserver_incoming_packets_total')).toEqual({ [rs1]: 50, [rs2]: 20, [rs3]: 10 });
    expect(family(text, 'tiergate_director_realserver_outgoing_packets_total')).toEqual({ [rs1]: 50, [rs2]: 20, [rs3]: 10 });
    expect(family(text, 'tiergate_director_realserver_incoming_bytes_total')).toEqual({ [rs1]: 5000, [rs2]: 2000, [rs3]: 1000 });
    expect(family(text, 'tiergate_director_realserver_outgoing_bytes_total')).toEqual({ [rs1]: 25000, [rs2]: 10000, [rs3]: 5000 });
    // ipvsadm -Ln: Weight, ActiveConn, InActConn; the configured weight; health (only checked servers have it).
    expect(family(text, 'tiergate_director_realserver_weight')).toEqual({ [rs1]: 3, [rs2]: 0, [rs3]: 1 });
    expect(family(text, 'tiergate_director_realserver_configured_weight')).toEqual({ [rs1]: 3, [rs2]: 2, [rs3]: 1 });
    expect(family(text, 'tiergate_director_realserver_active_connections')).toEqual({ [rs1]: 4, [rs2]: 1, [rs3]: 0 });
    expect(family(text, 'tiergate_director_realserver_inactive_connections')).toEqual({ [rs1]: 2, [rs2]: 0, [rs3]: 1 });
    expect(family(text, 'tiergate_director_realserver_healthy')).toEqual({ [rs1]: 1, [rs2]: 0 });
    // Counters are counters, gauges gauges (promtool checks the names; the types are ours to state).
    expect(text).toContain('# TYPE tiergate_director_realserver_connections_total counter');
    expect(text).toContain('# TYPE tiergate_director_realserver_active_connections gauge');
    // What runs, and the process it runs in.
    expect(family(text, 'tiergate_build_info')).toEqual({ [`version=9.9.9,node_version=${process.version}`]: 1 });
    expect(samples(text).find((s) => s.name === 'process_resident_memory_bytes')?.value).toBeGreaterThan(1e6);
    expect(text).not.toContain('nodejs_active_handles_total');
  });

  it('a new snapshot replaces the series: the kernel counters as they are now, no series for what left the table', async () => {
    const m = new DirectorMetrics({ processMetrics: false });
    m.update({ table: TABLE, services: SERVICES, health: new Map() });
    await m.registry.metrics();
    // `ipvsadm -Z` zeroed the counters, and 10.0.0.12 left the config and the table.
    const zeroed: IpvsServiceEntry[] = [
      { service: { ...svc('10.0.0.100', 80), stats: stats(1) }, destinations: [dest('10.0.0.11', 8080, 3, [1, 0], stats(1))] },
    ];
    const fewer = config([{ ...SERVICES[0], real_servers: [{ address: '10.0.0.11', port: 8080, weight: 3 }] }]);
    m.update({ table: zeroed, services: fewer, health: new Map() });
    const text = await m.registry.metrics();
    expect(family(text, 'tiergate_director_service_connections_total')).toEqual({ [WEB]: 1 });
    expect(family(text, 'tiergate_director_realserver_connections_total')).toEqual({ [`${WEB},server=10.0.0.11:8080`]: 1 });
    expect(family(text, 'tiergate_director_realserver_configured_weight')).toEqual({ [`${WEB},server=10.0.0.11:8080`]: 3 });
  });
});

describe('Director /metrics (admin listener over a table with stats)', () => {
  it('each scrape reads the table: its counters; reconcile cycles by kind, errors by code; health transitions per server', async () => {
    // A health-checked real server on loopback, which goes away: one `down` transition.
    const up = createServer((s) => s.end()).listen(0, '127.0.0.1');
    await once(up, 'listening');
    const port = (up.address() as { port: number }).port;
    const services = config([
      {
        name: 'web',
        address: '10.0.0.100',
        port: 80,
        scheduler: 'rr',
        real_servers: [{ address: '127.0.0.1' }],
        health_check: { type: 'tcp', port, interval: '30ms', timeout: '500ms', rise: 1, fall: 1, jitter: 0 },
      },
    ]);
    const driver = new FakeIpvs();
    await using d = new Director({ name: 'd1', services, driver, state: new MemoryStateStore(), intervalMs: 3_600_000 });
    await d.start();
    await using admin = await startAdminServer(d, { address: '127.0.0.1', port: 0 });
    const scrape = async () => {
      const res = await fetch(`${admin.url}/metrics`);
      expect(res.status).toBe(200);
      return res.text();
    };
    // What the kernel counted since (the fake table holds what a GET_SERVICE / GET_DEST would answer).
    const entry = driver.table.get('tcp/10.0.0.100:80') as IpvsServiceEntry;
    entry.service.stats = stats(12);
    (entry.destinations[0] as IpvsDestination).stats = stats(12);
    const labels = `${WEB},server=127.0.0.1:80`;
    let text = await scrape();
    expect(family(text, 'tiergate_director_realserver_connections_total')).toEqual({ [labels]: 12 });
    expect(family(text, 'tiergate_director_service_outgoing_bytes_total')).toEqual({ [WEB]: 60000 });
    entry.service.stats = stats(13);
    (entry.destinations[0] as IpvsDestination).stats = stats(13);
    text = await scrape();
    expect(family(text, 'tiergate_director_realserver_connections_total')).toEqual({ [labels]: 13 });
    // Every cycle kind and result has a series from the start (an error rate has something to compute on).
    expect(family(text, 'tiergate_director_reconcile_total')).toEqual({
      'result=ok,kind=full': 1,
      'result=error,kind=full': 0,
      'result=ok,kind=services': 0,
      'result=error,kind=services': 0,
      'result=ok,kind=idle': 0,
      'result=error,kind=idle': 0,
    });
    expect(family(text, 'tiergate_director_ops_total')).toMatchObject({
      'kind=add-service': 1,
      'kind=add-destination': 1,
      'kind=delete-service': 0,
    });

    // A cycle that fails: counted by kind and by its error code.
    driver.failOn = { match: /^addService/, error: new TgError('TG_IPVS_NOT_FOUND', 'no such scheduler (ENOENT)') };
    driver.table.clear();
    await d.reconcileNow({ full: true });
    const failed = d.lastCycle?.error?.code;
    expect(failed).toMatch(/^TG_/);
    driver.failOn = undefined;
    await d.reconcileNow();
    text = await scrape();
    expect(family(text, 'tiergate_director_reconcile_total')).toMatchObject({ 'result=ok,kind=full': 2, 'result=error,kind=full': 1 });
    expect(family(text, 'tiergate_director_reconcile_errors_total')).toEqual({ [`code=${failed}`]: 1 });
    expect(family(text, 'tiergate_director_reconcile_duration_seconds_count')).toMatchObject({ 'kind=full': 3, 'kind=idle': 0 });

    up.close(); // the check fails from now on (fall 1): one `down` transition of that server
    const deadline = Date.now() + 10_000;
    while (driver.table.get('tcp/10.0.0.100:80')?.destinations[0]?.weight !== 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    text = await scrape();
    expect(family(text, 'tiergate_director_health_transitions_total')).toEqual({ [`${labels},state=down`]: 1 });
    expect(family(text, 'tiergate_director_realserver_healthy')).toEqual({ [labels]: 0 });
    expect(family(text, 'tiergate_director_realserver_weight')).toEqual({ [labels]: 0 });
    expect(family(text, 'tiergate_director_realserver_configured_weight')).toEqual({ [labels]: 1 });
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
  });
});

describe('Director /metrics when the table cannot be read, and the VRRP pair', () => {
  const services = config([
    { name: 'web', address: '10.0.0.100', port: 80, scheduler: 'rr', real_servers: [{ address: '10.0.0.11', weight: 3 }] },
  ]);

  it('a failed IPVS read still answers the scrape: read_ok 0, the error counted by code, no kernel series until a read works', async () => {
    const driver = new FakeIpvs();
    await using d = new Director({ name: 'd1', services, driver, state: new MemoryStateStore(), intervalMs: 3_600_000 });
    await d.start();
    await using admin = await startAdminServer(d, { address: '127.0.0.1', port: 0 });
    const scrape = async () => {
      const res = await fetch(`${admin.url}/metrics`);
      expect(res.status).toBe(200);
      return res.text();
    };
    const server = `${WEB},server=10.0.0.11:80`;
    let text = await scrape();
    expect(family(text, 'tiergate_director_table_read_ok')).toEqual({ '': 1 });
    expect(family(text, 'tiergate_director_realserver_weight')).toEqual({ [server]: 3 });

    const listServices = driver.listServices.bind(driver);
    driver.listServices = () => Promise.reject(new TgError('TG_IPVS_PERMISSION', 'reading the IPVS table needs CAP_NET_ADMIN (EPERM)'));
    text = await scrape();
    expect(family(text, 'tiergate_director_table_read_ok')).toEqual({ '': 0 });
    expect(family(text, 'tiergate_director_table_read_errors_total')).toEqual({ 'code=TG_IPVS_PERMISSION': 1 });
    // The kernel's numbers are unknown now: absent, not the last read's (stale counters would feed rate()).
    expect(family(text, 'tiergate_director_realserver_weight')).toEqual({});
    expect(family(text, 'tiergate_director_service_connections_total')).toEqual({});
    // What the config says is still known.
    expect(family(text, 'tiergate_director_realserver_configured_weight')).toEqual({ [server]: 3 });
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });

    driver.listServices = listServices;
    text = await scrape();
    expect(family(text, 'tiergate_director_table_read_ok')).toEqual({ '': 1 });
    expect(family(text, 'tiergate_director_realserver_weight')).toEqual({ [server]: 3 });
    expect(family(text, 'tiergate_director_table_read_errors_total')).toEqual({ 'code=TG_IPVS_PERMISSION': 1 });
  });

  it('a director of a VRRP pair exports VIP ownership, keepalived state and sync daemons, read at each scrape', async () => {
    const driver = new FakeIpvs();
    await using d = new Director({ name: 'lb1', services, driver, state: new MemoryStateStore(), intervalMs: 3_600_000 });
    await d.start();
    await using admin = await startAdminServer(d, { address: '127.0.0.1', port: 0 });
    const scrape = async () => (await fetch(`${admin.url}/metrics`)).text();
    // Without a source (no pair): no series at all.
    let text = await scrape();
    expect(family(text, 'tiergate_director_vip_held')).toEqual({});
    expect(family(text, 'tiergate_director_sync_daemon')).toEqual({});

    let ha: HaStatus = {
      vipOwner: 'keepalived',
      vips: [{ address: '10.0.0.100', held: false }],
      vrrp: { state: 'BACKUP', since: '2026-12-06T10:00:00.000Z' },
      syncDaemons: [{ state: 'backup', interface: 'eth0', syncId: 7 } satisfies IpvsDaemon],
      wantedSync: 'backup',
    };
    let reads = 0;
    d.metrics.setHaSource(async () => {
      reads++;
      return ha;
    });
    text = await scrape();
    expect(family(text, 'tiergate_director_vip_held')).toEqual({ 'vip=10.0.0.100': 0 });
    expect(family(text, 'tiergate_director_vrrp_state')).toEqual({
      'state=MASTER': 0,
      'state=BACKUP': 1,
      'state=FAULT': 0,
      'state=STOP': 0,
    });
    expect(family(text, 'tiergate_director_sync_daemon')).toEqual({ 'state=master,wanted=false': 0, 'state=backup,wanted=true': 1 });

    // The takeover: the next scrape sees it.
    ha = {
      ...ha,
      vips: [{ address: '10.0.0.100', held: true }],
      vrrp: { state: 'MASTER', since: ha.vrrp?.since ?? '' },
      wantedSync: 'master',
    };
    text = await scrape();
    expect(family(text, 'tiergate_director_vip_held')).toEqual({ 'vip=10.0.0.100': 1 });
    expect(family(text, 'tiergate_director_vrrp_state')).toMatchObject({ 'state=MASTER': 1, 'state=BACKUP': 0 });
    // Still a backup daemon while master is wanted: the mismatch an alert looks for.
    expect(family(text, 'tiergate_director_sync_daemon')).toEqual({ 'state=master,wanted=true': 0, 'state=backup,wanted=false': 1 });
    expect(reads).toBe(2);

    // A failing read leaves the series absent for that scrape; the scrape still answers.
    d.metrics.setHaSource(() => Promise.reject(new Error('ip: command not found')));
    text = await scrape();
    expect(family(text, 'tiergate_director_vip_held')).toEqual({});
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, output: '' });
  });
});

import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { validateConfig } from '@tiergate/config';
import { isTgError } from '@tiergate/errors';
import { serviceKey } from '@tiergate/ipvs';
import { describe, expect, it } from 'vitest';
import type { VirtualService } from '../src/desired.ts';
import { Director } from '../src/reconciler.ts';
import { MemoryStateStore } from '../src/state-store.ts';
import { FakeIpvs } from './fake-ipvs.ts';

// The daemon's dirty tracking and model of the table, against an in-memory table (pure logic: which cycles read
// and write what). Health transitions come from real TCP checks on loopback. That the kernel agrees is proven in
// the QEMU guest (test/director-vm.test.ts).

const SVC = 'tcp/10.0.0.100:80';
const OTHER = 'tcp/10.0.0.101:80';

/** Every driver call, reads included, as `method key`: what a cycle costs in kernel round trips. */
class RecordingDriver extends FakeIpvs {
  readonly all: string[] = [];
  override async listServices() {
    this.all.push('listServices');
    return super.listServices();
  }
  override async listDestinations(id: Parameters<FakeIpvs['listDestinations']>[0]) {
    this.all.push(`listDestinations ${serviceKey(id)}`);
    return super.listDestinations(id);
  }
  /** Reads and writes since the last call, then forgets them. */
  take(): string[] {
    const writes = this.calls.splice(0).filter((c) => !c.startsWith('listDestinations'));
    return [...this.all.splice(0), ...writes];
  }
}

function config(services: unknown[]): VirtualService[] {
  return validateConfig({ version: 1, virtual_services: services }).virtual_services as VirtualService[];
}

const web = (weights: number[], extra: Record<string, unknown> = {}) => ({
  address: '10.0.0.100',
  port: 80,
  scheduler: 'wrr',
  real_servers: weights.map((weight, i) => ({ address: `10.0.0.${11 + i}`, weight })),
  ...extra,
});
const other = { address: '10.0.0.101', port: 80, scheduler: 'rr', real_servers: [{ address: '10.0.0.21' }] };

const destOf = (driver: FakeIpvs, svc: string, server: string) => driver.table.get(svc)?.destinations.find((d) => d.address === server);
const weightOf = (driver: FakeIpvs, svc: string, server: string) => destOf(driver, svc, server)?.weight;
/** What IPVS would count for a destination with open connections. */
function setActiveConns(driver: FakeIpvs, svc: string, server: string, n: number): void {
  const dest = destOf(driver, svc, server);
  if (!dest) throw new Error(`no destination ${server} in ${svc}`);
  dest.activeConns = n;
}

async function listen(host: string, port = 0): Promise<Server> {
  const server = createServer((s) => s.end()).listen(port, host);
  await once(server, 'listening');
  return server;
}

function director(driver: FakeIpvs, services: readonly VirtualService[], clock = { t: 1_000_000 }, resyncMs = 60_000) {
  return new Director({
    name: 'd1',
    services,
    driver,
    state: new MemoryStateStore(),
    intervalMs: 3_600_000,
    resyncMs,
    now: () => clock.t,
  });
}

describe('Director: dirty tracking and the model of the table', () => {
  it('runs a full cycle first, then a cycle with nothing to do makes no driver call at all', async () => {
    const driver = new RecordingDriver();
    await using d = director(driver, config([web([1, 1]), other]));
    await d.start();
    expect(driver.take()).toEqual([
      'listServices',
      `addService ${SVC}`,
      `addService ${OTHER}`,
      `addDestination ${SVC} 10.0.0.11:80 w=1`,
      `addDestination ${SVC} 10.0.0.12:80 w=1`,
      `addDestination ${OTHER} 10.0.0.21:80 w=1`,
    ]);
    expect(d.status().lastCycle).toMatchObject({ kind: 'full', ops: 5, error: null });
    expect(d.lastCycle).toEqual(d.status().lastCycle);

    await d.reconcileNow();
    await d.reconcileNow();
    expect(driver.take()).toEqual([]);
    expect(d.status().lastCycle).toMatchObject({ kind: 'idle', ops: 0 });
    // The model the status shows is what the table holds.
    expect(d.status().services.map((s) => [s.key, s.destinations.map((x) => `${x.server} w=${x.weight}`)])).toEqual([
      [SVC, ['10.0.0.11:80 w=1', '10.0.0.12:80 w=1']],
      [OTHER, ['10.0.0.21:80 w=1']],
    ]);
  });

  it('one health transition: one plan of that service, exactly one SET_DEST, no read', async () => {
    const up1 = await listen('127.0.0.1');
    const port = (up1.address() as { port: number }).port;
    const up2 = await listen('127.0.0.2', port);
    await using _servers = {
      [Symbol.asyncDispose]: async () => void (await Promise.all([up1, up2].map((s) => new Promise((r) => s.close(r))))),
    };
    const check = { type: 'tcp', port, interval: 30, timeout: 500, rise: 1, fall: 1, jitter: 0 };
    const services = config([
      {
        address: '10.0.0.100',
        port: 80,
        scheduler: 'rr',
        real_servers: [{ address: '127.0.0.1' }, { address: '127.0.0.2' }],
        health_check: check,
      },
      other,
    ]);
    const driver = new RecordingDriver();
    await using d = director(driver, services);
    await d.start();
    driver.take();

    up2.close(); // 127.0.0.2 refuses from now on: the next check fails (fall 1)
    const deadline = Date.now() + 10_000;
    while (weightOf(driver, SVC, '127.0.0.2') !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await d.reconcileNow(); // and nothing after it
    expect(driver.take()).toEqual([`updateDestination ${SVC} 127.0.0.2:80 w=0`]);
    expect(d.status().lastCycle).toMatchObject({ kind: 'idle' });
  });

  it('writes the table before its first health probe, and probes after', async () => {
    let probes = 0;
    const server = createServer((s) => {
      probes += 1;
      s.end();
    }).listen(0, '127.0.0.1');
    await once(server, 'listening');
    await using _server = { [Symbol.asyncDispose]: () => new Promise<void>((r) => server.close(() => r())) };
    const port = (server.address() as { port: number }).port;
    const check = { type: 'tcp', port, interval: 20, timeout: 500, rise: 1, fall: 1, jitter: 0 };
    const seenByApply: number[] = [];
    // A kernel slow enough for probes to run while it writes (each batch yields to the event loop for 50 ms).
    class SlowDriver extends RecordingDriver {
      override async applyBatch(ops: Parameters<FakeIpvs['applyBatch']>[0]) {
        await new Promise((r) => setTimeout(r, 50));
        seenByApply.push(probes);
        return super.applyBatch(ops);
      }
    }
    await using d = director(new SlowDriver(), config([{ ...web([1]), real_servers: [{ address: '127.0.0.1' }], health_check: check }]));
    await d.start();
    expect(seenByApply).toEqual([0, 0]); // add-service, add-destination: no probe yet
    const deadline = Date.now() + 10_000;
    while (probes === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(probes).toBeGreaterThan(0);
  });

  it('a reload with one weight changed plans that service only: one op, no read', async () => {
    const driver = new RecordingDriver();
    await using d = director(driver, config([web([1, 1]), other]));
    await d.start();
    driver.take();

    await d.reload(config([web([1, 5]), other]));
    expect(driver.take()).toEqual([`updateDestination ${SVC} 10.0.0.12:80 w=5`]);
    expect(d.status().lastCycle).toMatchObject({ kind: 'services', ops: 1 });

    // The same config again changes nothing; a removed service is deleted; an added one created.
    await d.reload(config([web([1, 5]), other]));
    expect(driver.take()).toEqual([]);
    await d.reload(config([web([1, 5]), { ...other, address: '10.0.0.102' }]));
    expect(driver.take()).toEqual([
      'addService tcp/10.0.0.102:80',
      'addDestination tcp/10.0.0.102:80 10.0.0.21:80 w=1',
      `deleteService ${OTHER}`,
    ]);
  });

  it('a removed real server drains: only its service is re-read, each cycle, until it has no connection', async () => {
    const driver = new RecordingDriver();
    await using d = director(driver, config([web([1, 1]), other]));
    await d.start();
    driver.take();
    setActiveConns(driver, SVC, '10.0.0.12', 2);

    await d.reload(config([web([1]), other]));
    expect(driver.take()).toEqual([`listDestinations ${SVC}`, `updateDestination ${SVC} 10.0.0.12:80 w=0`]);
    expect(d.status().services[0]?.destinations.map((x) => [x.server, x.weight, x.draining])).toEqual([
      ['10.0.0.11:80', 1, false],
      ['10.0.0.12:80', 0, true],
    ]);

    await d.reconcileNow(); // still 2 active connections
    expect(driver.take()).toEqual([`listDestinations ${SVC}`]);
    setActiveConns(driver, SVC, '10.0.0.12', 0);
    await d.reconcileNow();
    expect(driver.take()).toEqual([`listDestinations ${SVC}`, `deleteDestination ${SVC} 10.0.0.12:80`]);
    await d.reconcileNow(); // drained: nothing left to watch
    expect(driver.take()).toEqual([]);
  });

  it('a change made behind its back is repaired at the next resync, not before; foreign services stay as they are', async () => {
    const clock = { t: 1_000_000 };
    const driver = new RecordingDriver();
    await using d = director(driver, config([web([1, 1])]), clock, 60_000);
    await d.start();
    // An admin's `ipvsadm -d` on an owned service, and a foreign service of their own.
    driver.table.get(SVC)?.destinations.splice(1, 1);
    const foreign = config([{ address: '10.0.0.200', port: 80, scheduler: 'lc', real_servers: [{ address: '10.0.0.9' }] }]);
    const tmp = new FakeIpvs();
    await using f = director(tmp, foreign);
    await f.start();
    driver.table.set('tcp/10.0.0.200:80', structuredClone(tmp.table.get('tcp/10.0.0.200:80')!));
    driver.take();

    clock.t += 59_999;
    await d.reconcileNow();
    expect(driver.take()).toEqual([]);
    clock.t += 1;
    await d.reconcileNow();
    expect(driver.take()).toEqual(['listServices', `addDestination ${SVC} 10.0.0.12:80 w=1`]);
    expect(d.status().lastCycle).toMatchObject({ kind: 'full', ops: 1 });
    expect(d.status().services.find((s) => s.key === 'tcp/10.0.0.200:80')).toMatchObject({ managed: false, scheduler: 'lc' });
    // POST /reconcile asks for a full cycle too.
    await d.reconcileNow({ full: true });
    expect(driver.take()).toEqual(['listServices']);
  });

  it('after a failed apply it reports the partial apply, then reads the table again and converges', async () => {
    const driver = new RecordingDriver();
    await using d = director(driver, config([web([1, 1, 1])]));
    await d.start();
    driver.take();

    driver.failOn = { match: /updateDestination .*10\.0\.0\.12/, error: new Error('EPERM') };
    await d.reload(config([web([2, 2, 2])]));
    // One batch: the kernel answers each op, so the one after the failure is applied too.
    expect(driver.take()).toEqual([
      `updateDestination ${SVC} 10.0.0.11:80 w=2`,
      `updateDestination ${SVC} 10.0.0.12:80 w=2`,
      `updateDestination ${SVC} 10.0.0.13:80 w=2`,
    ]);
    expect(d.status().lastCycle).toMatchObject({ kind: 'services', ops: 3, error: { code: 'TG_DIRECTOR_APPLY_PARTIAL' } });

    driver.failOn = undefined;
    await d.reconcileNow();
    expect(driver.take()).toEqual(['listServices', `updateDestination ${SVC} 10.0.0.12:80 w=2`]);
    await d.reconcileNow();
    expect(driver.take()).toEqual([]);
  });

  it('an "already so" answer (the table changed under it) makes the next cycle a full one', async () => {
    const driver = new RecordingDriver();
    await using d = director(driver, config([web([1])]));
    await d.start();
    // Someone adds the server the next reload adds, and deletes another: the model does not know.
    await driver.addDestination(
      { family: 'inet', protocol: 'tcp', address: '10.0.0.100', port: 80 },
      { ...driver.table.get(SVC)!.destinations[0]!, address: '10.0.0.12' },
    );
    driver.take();
    await d.reload(config([web([1, 1])]));
    expect(driver.take()).toEqual([`addDestination ${SVC} 10.0.0.12:80 w=1`]); // EEXIST: tolerated
    await d.reconcileNow();
    expect(driver.take()).toEqual(['listServices']);
    expect(d.status().lastCycle).toMatchObject({ kind: 'full', ops: 0 });
  });

  it('a config it cannot use is refused by reload and changes nothing', async () => {
    const driver = new RecordingDriver();
    await using d = director(driver, config([web([1])]));
    await d.start();
    driver.take();
    const noPort = config([{ fwmark: 7, scheduler: 'rr', real_servers: [{ address: '10.0.0.11' }], health_check: { type: 'tcp' } }]);
    let thrown: unknown;
    try {
      await d.reload(noPort);
    } catch (err) {
      thrown = err;
    }
    expect(isTgError(thrown, 'TG_CONFIG_INVALID')).toBe(true);
    await d.reconcileNow();
    expect(driver.take()).toEqual([]);
  });
});

describe('Director: real-server health across reloads (a server keeps its state; a new one waits for a first pass)', () => {
  /** 127.0.0.1 and 127.0.0.3 accept on one port; 127.0.0.2 refuses there (a dead real server). */
  async function servers() {
    const up1 = await listen('127.0.0.1');
    const port = (up1.address() as { port: number }).port;
    const up3 = await listen('127.0.0.3', port);
    return {
      port,
      [Symbol.asyncDispose]: async () => void (await Promise.all([up1, up3].map((s) => new Promise((r) => s.close(r))))),
    };
  }
  const check = (port: number, timeout = 500) => ({ type: 'tcp', port, interval: 30, timeout, rise: 1, fall: 1, jitter: 0 });
  const svc = (addresses: string[], hc: unknown, address = '10.0.0.100') => ({
    address,
    port: 80,
    scheduler: 'rr',
    real_servers: addresses.map((a) => ({ address: a })),
    ...(hc ? { health_check: hc } : {}),
  });
  async function until(what: () => boolean): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(what()).toBe(true);
  }
  /** Polls `what` for `ms` (a few check intervals): it must hold at every look. */
  async function holds(what: () => boolean, ms = 300): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      expect(what()).toBe(true);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('a reload adding a server keeps the dead one at weight 0; the new one gets weight only after its first passing check', async () => {
    await using s = await servers();
    const driver = new RecordingDriver();
    await using d = director(driver, config([svc(['127.0.0.1', '127.0.0.2'], check(s.port))]));
    await d.start();
    await until(() => weightOf(driver, SVC, '127.0.0.2') === 0);
    driver.take();

    await d.reload(config([svc(['127.0.0.1', '127.0.0.2', '127.0.0.3'], check(s.port))]));
    // The reload's own cycle: the new server goes in at weight 0 (not checked yet), the dead one is not touched.
    expect(driver.take()).toEqual([`addDestination ${SVC} 127.0.0.3:80 w=0`]);
    expect(weightOf(driver, SVC, '127.0.0.2')).toBe(0);
    await until(() => weightOf(driver, SVC, '127.0.0.3') === 1);
    expect(driver.take()).toEqual([`updateDestination ${SVC} 127.0.0.3:80 w=1`]);
    await holds(() => weightOf(driver, SVC, '127.0.0.2') === 0 && weightOf(driver, SVC, '127.0.0.1') === 1);
    expect(d.status().services[0]?.destinations.map((x) => [x.server, x.healthy])).toEqual([
      ['127.0.0.1:80', true],
      ['127.0.0.2:80', false],
      ['127.0.0.3:80', true],
    ]);
  });

  it('a reload changing the check keeps a dead server down and a healthy one up: no op at all', async () => {
    await using s = await servers();
    const driver = new RecordingDriver();
    await using d = director(driver, config([svc(['127.0.0.1', '127.0.0.2'], check(s.port))]));
    await d.start();
    await until(() => weightOf(driver, SVC, '127.0.0.2') === 0);
    driver.take();

    await d.reload(config([svc(['127.0.0.1', '127.0.0.2'], check(s.port, 400))]));
    expect(driver.take()).toEqual([]);
    await holds(() => weightOf(driver, SVC, '127.0.0.2') === 0 && weightOf(driver, SVC, '127.0.0.1') === 1);
  });

  it('a service added by a reload starts with its servers down until each passes a check; one that gains a check keeps its servers up', async () => {
    await using s = await servers();
    const driver = new RecordingDriver();
    await using d = director(driver, config([svc(['127.0.0.1', '127.0.0.2'], undefined, '10.0.0.101')]));
    await d.start();
    driver.take();

    await d.reload(config([svc(['127.0.0.1', '127.0.0.2'], check(s.port), '10.0.0.101'), svc(['127.0.0.1', '127.0.0.2'], check(s.port))]));
    expect(driver.take()).toEqual([
      `addService ${SVC}`,
      `addDestination ${SVC} 127.0.0.1:80 w=0`,
      `addDestination ${SVC} 127.0.0.2:80 w=0`,
    ]);
    // The service that only gained a check: both servers were up and stay up until the check says otherwise.
    expect(weightOf(driver, OTHER, '127.0.0.1')).toBe(1);
    await until(() => weightOf(driver, SVC, '127.0.0.1') === 1 && weightOf(driver, OTHER, '127.0.0.2') === 0);
    await holds(() => weightOf(driver, SVC, '127.0.0.2') === 0);
  });
});

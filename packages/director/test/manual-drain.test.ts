import { request } from 'node:http';
import { validateConfig } from '@tiergate/config';
import { describe, expect, it } from 'vitest';
import { startAdminServer } from '../src/admin-server.ts';
import { reconcileCycle } from '../src/cycle.ts';
import { desiredEntries } from '../src/desired.ts';
import { type HeldServer, resolveServer } from '../src/manual-drain.ts';
import { Director } from '../src/reconciler.ts';
import { MemoryStateStore } from '../src/state-store.ts';
import { FakeIpvs } from './fake-ipvs.ts';

// A real server drained by hand (`tiergate director drain`, POST /drain): the planner's part (pure), the daemon's
// wait for its connections, and that it stays drained across cycles, reloads and a restart, against the in-memory
// table. That the kernel agrees with weight 0 and a delete is what test/director-vm.test.ts proves for every op.

const SVC = 'tcp/10.0.0.100:80';

const web = (extra: Record<string, unknown> = {}) => ({
  name: 'web',
  address: '10.0.0.100',
  port: 80,
  scheduler: 'wrr',
  real_servers: [
    { address: '10.0.0.11', weight: 3 },
    { address: '10.0.0.12', weight: 2 },
  ],
  ...extra,
});
const other = (servers = ['10.0.0.21']) => ({ address: '10.0.0.101', port: 80, real_servers: servers.map((address) => ({ address })) });

function config(services: unknown[]) {
  return validateConfig({ version: 1, virtual_services: services }).virtual_services;
}

const weights = (driver: FakeIpvs, svc = SVC) =>
  Object.fromEntries((driver.table.get(svc)?.destinations ?? []).map((d) => [d.address, d.weight]));

function setActiveConns(driver: FakeIpvs, server: string, n: number): void {
  const dest = driver.table.get(SVC)?.destinations.find((d) => d.address === server);
  if (!dest) throw new Error(`no destination ${server}`);
  dest.activeConns = n;
}

function director(driver: FakeIpvs, services: unknown[], o: { state?: MemoryStateStore; clock?: { t: number } } = {}) {
  const clock = o.clock ?? { t: 1_000_000 };
  return new Director({
    name: 'd1',
    services: config(services),
    driver,
    state: o.state ?? new MemoryStateStore(),
    intervalMs: 3_600_000,
    now: () => clock.t,
    drainPollMs: 5,
  });
}

const held = (phase: HeldServer['phase']): HeldServer => ({ since: 0, timeoutMs: 1000, after: 'keep', phase });

describe('drain by hand: the planner', () => {
  it('a held server is at weight 0 whatever its health, absent once removed; it no longer counts for the sorry server', () => {
    const services = config([web({ sorry_server: { address: '10.0.0.50' } })]);
    const plan = (h: Map<string, HeldServer>) =>
      desiredEntries(services, new Map(), h)[0]!.destinations.map((d) => `${d.address} w=${d.weight}`);
    expect(plan(new Map())).toEqual(['10.0.0.11 w=3', '10.0.0.12 w=2']);
    expect(plan(new Map([[`${SVC} 10.0.0.11:80`, held('draining')]]))).toEqual(['10.0.0.11 w=0', '10.0.0.12 w=2']);
    expect(plan(new Map([[`${SVC} 10.0.0.11:80`, held('drained')]]))).toEqual(['10.0.0.11 w=0', '10.0.0.12 w=2']);
    expect(plan(new Map([[`${SVC} 10.0.0.11:80`, held('removed')]]))).toEqual(['10.0.0.12 w=2']);
    const both = new Map([
      [`${SVC} 10.0.0.11:80`, held('removed')],
      [`${SVC} 10.0.0.12:80`, held('drained')],
    ]);
    expect(plan(both)).toEqual(['10.0.0.12 w=0', '10.0.0.50 w=1']);
  });

  it('a cycle saves the held servers in the state file, and `director apply` (no daemon) keeps them', async () => {
    const services = config([web()]);
    const driver = new FakeIpvs();
    const state = new MemoryStateStore();
    const h = new Map([[`${SVC} 10.0.0.12:80`, held('drained')]]);
    await reconcileCycle({ services, driver, state, health: new Map(), now: 1, held: h });
    expect(weights(driver)).toEqual({ '10.0.0.11': 3, '10.0.0.12': 0 });
    expect((await state.load()).held).toEqual({ [`${SVC} 10.0.0.12:80`]: held('drained') });
    // What `tiergate director apply` runs: no held map of its own, the state file's.
    const again = await reconcileCycle({ services, driver, state, health: new Map(), now: 2 });
    expect(again.ops).toEqual([]);
  });

  it('resolves what an operator types: name or VIP:PORT, ADDR or ADDR:PORT; anything else is TG_DIRECTOR_UNKNOWN_SERVER', () => {
    const services = config([web(), other(), { ...other(), protocol: 'udp' }]);
    expect(resolveServer(services, 'web', '10.0.0.12').key).toBe(`${SVC} 10.0.0.12:80`);
    expect(resolveServer(services, '10.0.0.100:80', '10.0.0.12:80').key).toBe(`${SVC} 10.0.0.12:80`);
    expect(resolveServer(services, 'udp/10.0.0.101:80', '10.0.0.21').key).toBe('udp/10.0.0.101:80 10.0.0.21:80');
    expect(() => resolveServer(services, '10.0.0.101:80', '10.0.0.21')).toThrow(/several virtual services: use one of tcp\/10.0.0.101:80/);
    expect(() => resolveServer(services, 'web', '10.0.0.99')).toThrow(
      /has no real server '10.0.0.99' \(real servers: 10.0.0.11:80, 10.0.0.12:80\)/,
    );
    expect(() => resolveServer(services, 'nope', '10.0.0.11')).toThrow(expect.objectContaining({ code: 'TG_DIRECTOR_UNKNOWN_SERVER' }));
  });
});

describe('drain by hand: the director daemon', () => {
  it('weight 0 at once, waits for the active connections, keeps weight 0 across cycles and reloads until undrained', async () => {
    const driver = new FakeIpvs();
    await using d = director(driver, [web(), other()]);
    await d.start();
    setActiveConns(driver, '10.0.0.12', 3);
    const drain = d.drain('web', '10.0.0.12', { timeoutMs: 60_000 });
    let done = false;
    void drain.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(weights(driver)).toEqual({ '10.0.0.11': 3, '10.0.0.12': 0 });
    expect(done).toBe(false); // 3 connections still open
    setActiveConns(driver, '10.0.0.12', 0);
    expect(await drain).toMatchObject({
      service: SVC,
      server: '10.0.0.12:80',
      phase: 'drained',
      after: 'keep',
      activeConns: 0,
      timedOut: false,
    });
    // Full cycles re-read and re-plan the table; reloads (another service changed, and this one's weights) keep it.
    await d.reconcileNow({ full: true });
    await d.reload(config([web(), other(['10.0.0.21', '10.0.0.22'])]));
    await d.reload(
      config([
        web({
          real_servers: [
            { address: '10.0.0.11', weight: 5 },
            { address: '10.0.0.12', weight: 5 },
          ],
        }),
        other(),
      ]),
    );
    await d.reconcileNow({ full: true });
    expect(weights(driver)).toEqual({ '10.0.0.11': 5, '10.0.0.12': 0 });
    expect(d.status().held).toEqual([
      { service: SVC, server: '10.0.0.12:80', phase: 'drained', after: 'keep', since: 1_000_000, timeoutMs: 60_000 },
    ]);
    expect(await d.undrain('10.0.0.100:80', '10.0.0.12')).toEqual({ service: SVC, server: '10.0.0.12:80', restored: true });
    expect(weights(driver)).toEqual({ '10.0.0.11': 5, '10.0.0.12': 5 });
    expect(d.status().held).toBeUndefined();
  });

  it('--then remove: deleted once drained (or at the timeout), and stays deleted across cycles and reloads', async () => {
    const clock = { t: 1_000_000 };
    const driver = new FakeIpvs();
    await using d = director(driver, [web(), other()], { clock });
    await d.start();
    setActiveConns(driver, '10.0.0.11', 7);
    const drain = d.drain('web', '10.0.0.11', { timeoutMs: 30_000, after: 'remove' });
    await new Promise((r) => setTimeout(r, 30));
    expect(weights(driver)).toEqual({ '10.0.0.11': 0, '10.0.0.12': 2 });
    clock.t += 30_000; // the connections never closed: the timeout ends the wait
    expect(await drain).toMatchObject({ phase: 'removed', activeConns: 7, timedOut: true, waitedMs: 30_000 });
    expect(weights(driver)).toEqual({ '10.0.0.12': 2 });
    await d.reconcileNow({ full: true });
    await d.reload(config([web(), other(['10.0.0.21', '10.0.0.22'])]));
    expect(weights(driver)).toEqual({ '10.0.0.12': 2 });
    await d.undrain('web', '10.0.0.11');
    expect(weights(driver)).toEqual({ '10.0.0.11': 3, '10.0.0.12': 2 });
  });

  it('a failed read of the active connections is retried, not fatal: the drain ends once the kernel answers', async () => {
    const driver = new FakeIpvs();
    await using d = director(driver, [web(), other()]);
    await d.start();
    driver.failOn = { match: /^listDestinations /, error: new Error('netlink: EBUSY') };
    const drain = d.drain('web', '10.0.0.12', { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 50));
    expect(weights(driver)).toEqual({ '10.0.0.11': 3, '10.0.0.12': 0 });
    driver.failOn = undefined;
    expect(await drain).toMatchObject({ phase: 'drained', activeConns: 0, timedOut: false });
  });

  it('survives a director restart (the state file); a drain in progress goes on waiting', async () => {
    const state = new MemoryStateStore();
    const driver = new FakeIpvs();
    const first = director(driver, [web(), other()], { state });
    await first.start();
    setActiveConns(driver, '10.0.0.11', 2);
    await first.drain('web', '10.0.0.11', { wait: false, after: 'remove' }).then((r) => expect(r.phase).toBe('draining'));
    await first.drain('web', '10.0.0.12', { wait: false });
    await first.stop();
    // A new daemon on the same table and state file, as after `systemctl restart tiergate-director`.
    await using second = director(driver, [web(), other()], { state });
    await second.start();
    expect(weights(driver)).toEqual({ '10.0.0.11': 0, '10.0.0.12': 0 });
    setActiveConns(driver, '10.0.0.11', 0);
    await expect.poll(() => weights(driver), { timeout: 2000 }).toEqual({ '10.0.0.12': 0 });
    expect(second.status().held?.map((h) => [h.server, h.phase])).toEqual([
      ['10.0.0.11:80', 'removed'],
      ['10.0.0.12:80', 'drained'],
    ]);
    // A server that leaves the config is forgotten: added back later, it is not held.
    await second.reload(config([web({ real_servers: [{ address: '10.0.0.11', weight: 3 }] }), other()]));
    await second.reload(config([web(), other()]));
    expect(weights(driver)).toEqual({ '10.0.0.12': 2 });
  });
});

function call(
  url: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: body === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject).end(body);
  });
}

describe('drain by hand: POST /drain and /undrain on the admin listener', () => {
  it('drains and undrains with the token; a malformed body is 400, an unknown server 404, no token 401', async () => {
    const driver = new FakeIpvs();
    await using d = director(driver, [web(), other()]);
    await d.start();
    await using admin = await startAdminServer(d, { address: '127.0.0.1', port: 0, token: 's3cret' });
    const auth = { authorization: 'Bearer s3cret' };
    const drain = (o: unknown) => call(`${admin.url}/drain`, JSON.stringify(o), auth);
    expect((await call(`${admin.url}/drain`, JSON.stringify({ service: 'web', server: '10.0.0.12' }))).status).toBe(401);
    expect(await drain({ service: 'web', server: '10.0.0.12', after: 'keep', timeout_ms: 10_000 })).toEqual({
      status: 200,
      json: { service: SVC, server: '10.0.0.12:80', phase: 'drained', after: 'keep', activeConns: 0, timedOut: false, waitedMs: 0 },
    });
    expect(weights(driver)).toEqual({ '10.0.0.11': 3, '10.0.0.12': 0 });
    const status = await call(`${admin.url}/status`, undefined, auth);
    expect(status.json.held).toEqual([
      { service: SVC, server: '10.0.0.12:80', phase: 'drained', after: 'keep', since: 1_000_000, timeoutMs: 10_000 },
    ]);
    for (const bad of [
      'not json',
      JSON.stringify({ service: 'web' }),
      JSON.stringify({ service: 'web', server: '10.0.0.12', after: 'later' }),
    ]) {
      const r = await call(`${admin.url}/drain`, bad, auth);
      expect([r.status, r.json.code]).toEqual([400, 'TG_ADMIN_BAD_REQUEST']);
    }
    const unknown = await drain({ service: 'web', server: '10.0.0.99' });
    expect([unknown.status, unknown.json.code]).toEqual([404, 'TG_DIRECTOR_UNKNOWN_SERVER']);
    const undrain = await call(`${admin.url}/undrain`, JSON.stringify({ service: '10.0.0.100:80', server: '10.0.0.12:80' }), auth);
    expect(undrain).toEqual({ status: 200, json: { service: SVC, server: '10.0.0.12:80', restored: true } });
    expect(weights(driver)).toEqual({ '10.0.0.11': 3, '10.0.0.12': 2 });
  });
});

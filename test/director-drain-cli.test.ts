import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { validateConfig } from '@tiergate/config';
import { Director, MemoryStateStore, startAdminServer } from '@tiergate/director';
import { describe, expect, it } from 'vitest';
import { FakeIpvs } from '../packages/director/test/fake-ipvs.ts';
import { configDir, runCli } from './proxy-ops-helpers.ts';

// `tiergate director drain|undrain` as a real CLI process against a running director's admin listener (the daemon
// in this process, over an in-memory IPVS table: the kernel side is the QEMU guest's). The CLI finds the daemon and
// its token from the file's director entry, as an operator runs it on the director host.

const TOKEN = 'drain-token';
const services = [
  {
    name: 'web-http',
    address: '192.0.2.100',
    port: 80,
    scheduler: 'wrr',
    real_servers: [{ address: '192.0.2.11' }, { address: '192.0.2.12' }],
  },
];
const fileFor = (port: number) => `version: 1
directors:
  - name: lb1
    interface: eth0
    admin: { address: 127.0.0.1, port: ${port}, token: ${TOKEN} }
virtual_services:
  - name: web-http
    address: 192.0.2.100
    port: 80
    scheduler: wrr
    real_servers: [{ address: 192.0.2.11 }, { address: 192.0.2.12 }]
`;

describe('tiergate director drain / undrain', () => {
  it('drains a real server through the daemon, keeps it out, and restores it; an unknown server exits 1 with its code', async () => {
    const driver = new FakeIpvs();
    await using d = new Director({
      name: 'lb1',
      services: validateConfig({ version: 1, virtual_services: services }).virtual_services,
      driver,
      state: new MemoryStateStore(),
      intervalMs: 3_600_000,
      drainPollMs: 10,
    });
    await d.start();
    await using admin = await startAdminServer(d, { address: '127.0.0.1', port: 0, token: TOKEN });
    using cfg = configDir(fileFor(Number(new URL(admin.url).port)));
    const weights = () => Object.fromEntries(driver.table.get('tcp/192.0.2.100:80')!.destinations.map((x) => [x.address, x.weight]));

    const drained = await runCli([
      'director',
      'drain',
      '-c',
      cfg.file,
      '--service',
      '192.0.2.100:80',
      '--server',
      '192.0.2.12',
      '--then',
      'remove',
    ]);
    expect([drained.code, drained.stderr]).toEqual([0, '']);
    expect(drained.stdout).toMatch(
      /^removed tcp\/192\.0\.2\.100:80 -> 192\.0\.2\.12:80 \(drained in \d+\.\d s\); out of the service until `tiergate director undrain`\n$/,
    );
    expect(weights()).toEqual({ '192.0.2.11': 1 });
    await d.reconcileNow({ full: true });
    expect(weights()).toEqual({ '192.0.2.11': 1 });

    const unknown = await runCli(['director', 'drain', '-c', cfg.file, '--service', 'web-http', '--server', '192.0.2.99']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('TG_DIRECTOR_UNKNOWN_SERVER');

    const restored = await runCli(['director', 'undrain', '-c', cfg.file, '--service', 'web-http', '--server', '192.0.2.12:80']);
    expect([restored.code, restored.stdout]).toEqual([0, 'undrained: tcp/192.0.2.100:80 -> 192.0.2.12:80\n']);
    expect(weights()).toEqual({ '192.0.2.11': 1, '192.0.2.12': 1 });
  });

  it('without a running daemon: exit 1, TG_ADMIN_UNREACHABLE, naming the command to start', async () => {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r)); // nothing listens there now
    using cfg = configDir(fileFor(port));
    const r = await runCli(['director', 'drain', '-c', cfg.file, '--service', 'web-http', '--server', '192.0.2.11']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^tiergate: no director daemon answers at http:\/\/127\.0\.0\.1:\d+ \(is `tiergate director run` running\?\): .*\[TG_ADMIN_UNREACHABLE\]$/m,
    );
  });
});

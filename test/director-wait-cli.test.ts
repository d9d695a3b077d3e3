import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { validateConfig } from '@tiergate/config';
import { Director, MemoryStateStore, startAdminServer } from '@tiergate/director';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { FakeIpvs } from '../packages/director/test/fake-ipvs.ts';
import { configDir, runCli } from './proxy-ops-helpers.ts';

// `tiergate director wait` as a real CLI process against a running director (the daemon in this process, with real
// HTTP health checks of a real server on loopback, over an in-memory IPVS table: the kernel side is the QEMU guest's,
// test/stack-vm.test.ts, where the rolling restart waits with it). It is what a rollout runs between two nodes.

const TOKEN = 'wait-token';

describe('tiergate director wait', () => {
  it('waits until the daemon routes to the server (check passed rise times, weight back), times out naming where it stands, takes a held server as settled', async () => {
    // The real server's monitor_uri: 503 (a node still starting, or leaving) until `ready`.
    let ready = false;
    const rs = createServer((_req, res) => res.writeHead(ready ? 200 : 503).end()).listen(0, '127.0.0.1');
    await once(rs, 'listening');
    await using _rs = { [Symbol.asyncDispose]: () => new Promise<void>((r) => rs.close(() => r())) };
    const port = (rs.address() as AddressInfo).port;
    const check = `{ type: http, port: ${port}, path: /health, interval: 100ms, timeout: 500ms, fall: 1, rise: 3, jitter: 0, on_failure: quiesce }`;
    // 127.0.0.2 answers nothing on that port: down throughout (and drained by hand below).
    const services = `  - name: web-http
    address: 192.0.2.100
    port: 80
    scheduler: wrr
    real_servers: [{ address: 127.0.0.1 }, { address: 127.0.0.2 }, { address: 127.0.0.3, weight: 0 }]
    health_check: ${check}
`;
    const driver = new FakeIpvs();
    const vs = validateConfig(parse(`version: 1\nvirtual_services:\n${services}`)).virtual_services;
    await using d = new Director({ name: 'lb1', services: vs, driver, state: new MemoryStateStore(), intervalMs: 50, drainPollMs: 10 });
    await d.start();
    await using adminSrv = await startAdminServer(d, { address: '127.0.0.1', port: 0, token: TOKEN });
    using cfg = configDir(`version: 1
directors:
  - name: lb1
    interface: eth0
    admin: { address: 127.0.0.1, port: ${new URL(adminSrv.url).port}, token: ${TOKEN} }
virtual_services:
${services}`);
    const weightOf = (a: string) => driver.table.get('tcp/192.0.2.100:80')?.destinations.find((x) => x.address === a)?.weight;
    const wait = (server: string, timeout: string) =>
      runCli(['director', 'wait', '-c', cfg.file, '--server', server, '--timeout', timeout]);

    // Down: the timeout ends it, exit 1, naming the service and the state.
    const early = await wait('127.0.0.1', '1s');
    expect([early.code, early.stdout]).toEqual([1, '']);
    expect(early.stderr).toMatch(
      /^tiergate: director lb1, after 1s: tcp\/192\.0\.2\.100:80 -> 127\.0\.0\.1:80: down .*\[TG_DIRECTOR_WAIT_TIMEOUT\]$/m,
    );
    expect(weightOf('127.0.0.1')).toBe(0);

    // The node comes up while the command waits: it returns once the daemon has routed to it again, not before.
    const waiting = wait('127.0.0.1', '20s');
    await new Promise((r) => setTimeout(r, 1_500));
    ready = true;
    const done = await waiting;
    expect([done.code, done.stderr]).toEqual([0, '']);
    expect(done.stdout).toMatch(/^routed: tcp\/192\.0\.2\.100:80 -> 127\.0\.0\.1:80 \(weight 1\) after \d+\.\d s\n$/);
    expect(Number(/after (\S+) s/.exec(done.stdout)?.[1])).toBeGreaterThanOrEqual(1.5);
    expect(weightOf('127.0.0.1')).toBe(1);

    // Down but drained by hand: nothing to wait for (it stays out until undrained). Weight 0 in the file: the same.
    expect((await runCli(['director', 'drain', '-c', cfg.file, '--service', 'web-http', '--server', '127.0.0.2', '--no-wait'])).code).toBe(
      0,
    );
    const held = await wait('127.0.0.2', '1s');
    expect([held.code, held.stderr]).toEqual([0, '']);
    expect(held.stdout).toMatch(/^held: tcp\/192\.0\.2\.100:80 -> 127\.0\.0\.2:80 after \d+\.\d s\n$/);
    const off = await wait('127.0.0.3:80', '1s');
    expect([off.code, off.stderr]).toEqual([0, '']);
    expect(off.stdout).toMatch(/^off: tcp\/192\.0\.2\.100:80 -> 127\.0\.0\.3:80 after/);

    // A server no service lists: at once, not after the timeout.
    const unknown = await wait('127.0.0.9', '30s');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(
      "no virtual service has a real server '127.0.0.9' (real servers: 127.0.0.1:80, 127.0.0.2:80, 127.0.0.3:80)",
    );
    expect(unknown.stderr).toContain('TG_DIRECTOR_UNKNOWN_SERVER');
  });

  it('a daemon that refuses the token or does not run: asked until the timeout, which says so; an unknown server is refused without a daemon', async () => {
    const d = new Director({
      name: 'lb1',
      services: validateConfig({
        version: 1,
        virtual_services: [{ address: '192.0.2.100', port: 80, real_servers: [{ address: '192.0.2.11' }] }],
      }).virtual_services,
      driver: new FakeIpvs(),
      state: new MemoryStateStore(),
      intervalMs: 3_600_000,
    });
    await d.start();
    const adminSrv = await startAdminServer(d, { address: '127.0.0.1', port: 0, token: 'the-right-one' });
    const port = new URL(adminSrv.url).port;
    const file = (token: string) => `version: 1
directors:
  - name: lb1
    interface: eth0
    admin: { address: 127.0.0.1, port: ${port}, token: ${token} }
virtual_services:
  - { address: 192.0.2.100, port: 80, real_servers: [{ address: 192.0.2.11 }] }
`;
    using cfg = configDir(file('a-wrong-one'));
    const wrong = await runCli(['director', 'wait', '-c', cfg.file, '--server', '192.0.2.11', '--timeout', '1s']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /director lb1, after 1s: the daemon at http:\/\/127\.0\.0\.1:\d+ answered HTTP 401: .*\[TG_DIRECTOR_WAIT_TIMEOUT\]$/m,
    );

    await adminSrv.close();
    await d.stop();
    cfg.write(file('the-right-one'));
    const none = await runCli(['director', 'wait', '-c', cfg.file, '--server', '192.0.2.11', '--timeout', '1s']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(
      /after 1s: no director daemon answers at http:\/\/127\.0\.0\.1:\d+ \(is `tiergate director run` running\?\): .*\[TG_DIRECTOR_WAIT_TIMEOUT\]$/m,
    );
    // Checked against the file before any daemon is asked: at once, even with a long timeout and no daemon.
    const unknown = await runCli(['director', 'wait', '-c', cfg.file, '--server', '192.0.2.12', '--timeout', '10m'], 10_000);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no virtual service has a real server '192.0.2.12' (real servers: 192.0.2.11:80)");
    const bad = await runCli(['director', 'wait', '-c', cfg.file, '--server', 'proxy1', '--timeout', '10m'], 10_000);
    expect([bad.code, bad.stderr]).toEqual([2, "tiergate: --server: expected ADDR or ADDR:PORT, not 'proxy1' [TG_CLI_USAGE]\n"]);
  });
});

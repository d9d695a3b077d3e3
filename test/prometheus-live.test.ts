import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { validateConfig } from '@tiergate/config';
import { Director, type HaStatus, MemoryStateStore, startAdminServer } from '@tiergate/director';
import { TgError } from '@tiergate/errors';
import type { IpvsDaemon } from '@tiergate/ipvs';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { FakeIpvs } from '../packages/director/test/fake-ipvs.ts';
import { admin, configDir, startProxyProc } from './proxy-ops-helpers.ts';

// Items 5 and 6 of issue 20: Debian's real Prometheus scrapes a real `tiergate proxy` process (in front of real
// upstreams, one of them dead, during a bounded load with some 5xx and slow answers) and a director daemon, with
// infra/prometheus's rules loaded; every rule's and every Grafana panel's expression must return series. The
// director runs in this process over an in-memory IPVS table (this kernel has no IPVS; the kernel side is the QEMU
// guest's), with its real reconciler, health checks, metrics and admin listener.

const ROOT = resolve(import.meta.dirname, '..');
const RULES = join(ROOT, 'infra/prometheus/rules/tiergate.rules.yml');
const RULE_TESTS = join(ROOT, 'infra/prometheus/rules/tiergate.rules.test.yml');
const DASHBOARD = join(ROOT, 'infra/prometheus/grafana/tiergate-dashboard.json');

/** Runs promtool (Debian's prometheus package) once, bounded: its exit code and what it printed. */
function promtool(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((res, rej) => {
    const child = spawn('promtool', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c));
    child.stderr.on('data', (c: Buffer) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', (err) => rej(new Error('this test needs promtool (apt-get install prometheus)', { cause: err })));
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, output });
    });
  });
}

/** A loopback port that was free a moment ago (nothing listens on it now). */
async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** An upstream: `/err` answers 500, `/slow` after 1.1 s (above the p99 alert's 1 s), anything else 200 at once. */
async function startApp(): Promise<{ port: number } & AsyncDisposable> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    req.resume();
    if (req.url === '/err') res.writeHead(500).end('failing');
    else if (req.url === '/slow') setTimeout(() => res.end('slow'), 1_100);
    else res.end('ok');
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

interface Prometheus extends AsyncDisposable {
  readonly url: string;
  /** An instant query's result vector (throws on an API error: a query that does not parse, say). */
  query(expr: string): Promise<unknown[]>;
}

/** Debian's `prometheus` as a child process with `config` and its TSDB in a temp dir; ready when /-/ready is 200. */
async function startPrometheus(config: string): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'tg-prometheus-'));
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const dispose = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) break;
    const ready = await request(`${url}/-/ready`).then(
      async (r) => {
        await r.body.text();
        return r.statusCode === 200;
      },
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (child.exitCode !== null || Date.now() > deadline) {
    await dispose();
    throw new Error(`prometheus did not start: ${stderr.slice(-2000)}`);
  }
  return {
    url,
    async query(expr) {
      const r = await request(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
      const body = (await r.body.json()) as { status: string; error?: string; data?: { result: unknown[] } };
      if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
      return body.data!.result;
    },
    [Symbol.asyncDispose]: dispose,
  };
}

/** Every `expr` of the rules file, by the rule's name (record or alert). */
function parseRules(text: string): Map<string, string> {
  const rules = (parse(text) as { groups: { rules: { record?: string; alert?: string; expr: string }[] }[] }).groups.flatMap(
    (g) => g.rules,
  );
  return new Map(rules.map((r) => [(r.record ?? r.alert)!, r.expr]));
}

/**
 * Every query of the dashboard's panels (rows' nested panels too), with Grafana's `$__rate_interval` replaced by
 * 1m (what Grafana substitutes: at least four scrape intervals), keyed by panel title and refId.
 */
function dashboardExpressions(): Map<string, string> {
  type Panel = { title: string; panels?: Panel[]; targets?: { refId: string; expr: string }[] };
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  const out = new Map<string, string>();
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.set(`${p.title} ${t.refId}`, t.expr.replaceAll('$__rate_interval', '1m'));
      walk(p.panels ?? []);
    }
  };
  walk(dash.panels);
  return out;
}

/** Polls each expression until it returns series or the deadline passes; the ones still empty (bounded). */
async function emptyAfterWaiting(prom: Prometheus, exprs: Map<string, string>, timeoutMs: number): Promise<string[]> {
  const pending = new Map(exprs);
  const deadline = Date.now() + timeoutMs;
  while (pending.size > 0 && Date.now() < deadline) {
    for (const [name, expr] of pending) if ((await prom.query(expr)).length > 0) pending.delete(name);
    if (pending.size > 0) await new Promise((r) => setTimeout(r, 500));
  }
  return [...pending].map(([name, expr]) => `${name}: ${expr}`);
}

describe('Prometheus over tiergate (Debian prometheus, real proxy and director)', () => {
  it('the rules pass promtool check rules and their unit tests (promtool test rules)', async () => {
    const checked = await promtool(['check', 'rules', RULES]);
    expect(checked.code, checked.output).toBe(0);
    const tested = await promtool(['test', 'rules', RULE_TESTS]);
    expect(tested.code, tested.output).toBe(0);
    expect(tested.output).toContain('SUCCESS');
  });

  it('every dashboard expression parses (promtool check rules over them as recording rules)', async () => {
    const exprs = dashboardExpressions();
    expect(exprs.size).toBeGreaterThan(15);
    const dir = mkdtempSync(join(tmpdir(), 'tg-dash-'));
    try {
      const rules = [...exprs.values()].map((expr, i) => ({ record: `dashboard:query_${i}`, expr }));
      writeFileSync(join(dir, 'dashboard.rules.yml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
      const checked = await promtool(['check', 'rules', join(dir, 'dashboard.rules.yml')]);
      expect(checked.code, checked.output).toBe(0);
      expect(checked.output).toContain(`SUCCESS: ${exprs.size} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('scrapes a proxy and a director under load: every rule and dashboard expression returns series', { timeout: 90_000 }, async () => {
    await using app = await startApp();
    const deadPort = await freePort();
    // Pool `app`: a dead server that stays in rotation (max_fails 0), so its attempts fail and are retried on the
    // live one; pool `checked`: the same pair with an active check, which marks the dead one down (a transition).
    // The check's timeout is generous: the dead server refuses at once, and a loaded CI machine must not time out
    // the live one's checks (both down: a 502, seen once with 200 ms at load average 10).
    using cfg = configDir(`version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 0 }]
  admin: { address: 127.0.0.1, port: 0 }
  workers: 1
  shutdown_timeout: 2s
  access_log: false
  routes:
    - { path: /checked, pool: checked }
    - { path: /, pool: app }
  pools:
    app:
      servers: [{ address: "127.0.0.1:${app.port}" }, { address: "127.0.0.1:${deadPort}", max_fails: 0 }]
    checked:
      servers: [{ address: "127.0.0.1:${app.port}" }, { address: "127.0.0.1:${deadPort}" }]
      health_check: { type: http, interval: 300ms, timeout: 2s }
`);
    await using proxy = await startProxyProc(cfg.file);

    // The director: a live and a dead real server under a tcp check, over an in-memory table. Its first cycle writes
    // the table; then the live server's destination vanishes from the table (an `ipvsadm -d` by hand) and the table
    // refuses to take it back, so that every full cycle (each second: resyncMs) fails: the reconcile-errors alert.
    const table = new FakeIpvs();
    const services = validateConfig({
      version: 1,
      virtual_services: [
        {
          name: 'web-http',
          address: '192.0.2.100',
          port: 8080,
          forwarding: 'nat',
          real_servers: [
            { address: '127.0.0.1', port: app.port },
            { address: '127.0.0.1', port: deadPort },
          ],
          health_check: { type: 'tcp', interval: '300ms', timeout: '200ms', fall: 1 },
        },
      ],
    }).virtual_services;
    await using director = new Director({
      name: 'lb1',
      services,
      driver: table,
      state: new MemoryStateStore(),
      intervalMs: 200,
      resyncMs: 1_000,
    });
    await director.start();
    const entry = table.table.get('tcp/192.0.2.100:8080')!;
    entry.destinations = entry.destinations.filter((d) => d.port !== app.port);
    table.failOn = {
      match: new RegExp(`^addDestination .* 127\\.0\\.0\\.1:${app.port} `),
      error: new TgError('TG_IPVS_KERNEL', 'refused (ENOMEM)'),
    };
    await using directorAdmin = await startAdminServer(director, { address: '127.0.0.1', port: 0 });
    // A second director of the VRRP pair, lb2, whose kernel table cannot be read (the read-error alert). The pair's
    // host state (VIPs on the interface, keepalived's notify file, the kernel's sync daemons) is what haStatus reads
    // on a real director; here it is given: VIP .100 on neither director (the unheld alert), .101 on both (split
    // brain), and lb2 wanting the master sync daemon without running one (the wrong-role alert).
    const lb2Table = new FakeIpvs();
    await using lb2 = new Director({ name: 'lb2', services, driver: lb2Table, state: new MemoryStateStore(), intervalMs: 3_600_000 });
    await lb2.start();
    lb2Table.listServices = () => Promise.reject(new TgError('TG_IPVS_PERMISSION', 'reading the IPVS table needs CAP_NET_ADMIN (EPERM)'));
    const pair = (held100: boolean, daemons: IpvsDaemon[], wanted: 'master' | 'backup'): HaStatus => ({
      vipOwner: 'keepalived',
      vips: [
        { address: '192.0.2.100', held: held100 },
        { address: '192.0.2.101', held: true },
      ],
      vrrp: { state: wanted === 'master' ? 'MASTER' : 'BACKUP', since: new Date().toISOString() },
      syncDaemons: daemons,
      wantedSync: wanted,
    });
    director.metrics.setHaSource(async () => pair(false, [{ state: 'master', interface: 'eth0', syncId: 1 }], 'master'));
    lb2.metrics.setHaSource(async () => pair(false, [], 'master'));
    await using lb2Admin = await startAdminServer(lb2, { address: '127.0.0.1', port: 0 });

    const hostPort = (u: string) => new URL(u).host;
    const deadTarget = `127.0.0.1:${await freePort()}`;
    await using prom = await startPrometheus(`global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [${JSON.stringify(RULES)}]
scrape_configs:
  - job_name: tiergate-proxy
    static_configs: [{ targets: [${JSON.stringify(hostPort(proxy.admin))}, ${JSON.stringify(deadTarget)}] }]
  - job_name: tiergate-director
    static_configs: [{ targets: [${JSON.stringify(hostPort(directorAdmin.url))}, ${JSON.stringify(hostPort(lb2Admin.url))}] }]
`);

    // Load only once Prometheus scrapes the proxy: rates need samples before and after the requests.
    expect(await emptyAfterWaiting(prom, new Map([['proxy scraped', 'up{job="tiergate-proxy"} == 1']]), 15_000)).toEqual([]);
    // Bounded load over several scrapes: each round, fast 200s on both pools, 5xx (10 %, above the 5 % alert) and
    // slow answers (7 %, above the 1 % that puts p99 past the 1 s alert).
    const statuses: Record<string, number[]> = {};
    for (let round = 0; round < 6; round++) {
      const started = Date.now();
      const batch = [...Array(20).fill('/'), ...Array(4).fill('/checked'), ...Array(3).fill('/err'), ...Array(2).fill('/slow')] as string[];
      await Promise.all(
        batch.map(async (path) => {
          const res = await request(`${proxy.url}${path}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
          await res.body.text();
          statuses[path] = [...(statuses[path] ?? []), res.statusCode];
        }),
      );
      // An operator's reload halfway (tiergate_proxy_reloads_total).
      if (round === 2) expect(await admin(proxy.admin, '/reload', undefined, 'POST')).toMatchObject({ status: 200 });
      await new Promise((r) => setTimeout(r, Math.max(0, 1_000 - (Date.now() - started))));
    }
    expect(Object.fromEntries(Object.entries(statuses).map(([path, codes]) => [path, [...new Set(codes)]]))).toEqual({
      '/': [200],
      '/checked': [200],
      '/err': [500],
      '/slow': [200],
    });

    const rules = parseRules(readFileSync(RULES, 'utf8'));
    expect(rules.size).toBeGreaterThan(10); // the file parsed into rules at all
    expect(await emptyAfterWaiting(prom, rules, 20_000)).toEqual([]);
    expect(await emptyAfterWaiting(prom, dashboardExpressions(), 10_000)).toEqual([]);

    // Prometheus itself evaluates the loaded rules without error, and the recorded series exist.
    const r = await request(`${prom.url}/api/v1/rules`);
    const groups = ((await r.body.json()) as { data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] } }).data
      .groups;
    const loaded = groups.flatMap((g) => g.rules);
    expect(loaded.map((x) => x.name).sort()).toEqual([...rules.keys()].sort());
    expect(loaded.filter((x) => x.health !== 'ok')).toEqual([]);
    expect((await prom.query('pool:tiergate_proxy_requests_5xx:ratio_rate5m{pool="app"}')).length).toBe(1);
  });
});

import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Director, type DirectorStatus, startAdminServer as startDirectorAdmin } from '@tiergate/director';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configDir, type ProxyProc, startProxyProc, startUpstream } from './proxy-ops-helpers.ts';

// The admin listeners' live status pages in a real browser (Debian's chromium, headless) against a real
// `tiergate proxy` in front of two real upstreams with a TCP health check every 200 ms: the table shows
// both up, one upstream stops, and the page marks it down by itself (no reload), within a few polls. The
// director's page runs the same script over its IPVS table (a fixed one here: no kernel).

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // Loopback only, whatever proxy the environment configures.
  '--no-proxy-server',
];
/** Poll interval of the page under test (`?refresh=`), seconds. */
const REFRESH_S = 0.5;
/** Bound on noticing the failure: health check fall (1 × 200 ms + 200 ms timeout) plus a poll, with room for a loaded machine. */
const NOTICE_MS = 15_000;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function yaml(servers: string[], token?: string, workers = 1): string {
  return `version: 1
proxy:
  listeners: [{ address: 127.0.0.1, port: 0 }]
  admin: { address: 127.0.0.1, port: 0${token ? `, token: ${token}` : ''} }
  workers: ${workers}
  shutdown_timeout: 5s
  access_log: false
  pools:
    app:
      servers: [${servers.map((s) => `{ address: "${s}" }`).join(', ')}]
      health_check: { type: tcp, interval: 200ms, timeout: 200ms, fall: 1, rise: 1, jitter: 0 }
`;
}

const row = (page: Page, key: string) => page.locator(`#rows tr[data-key="${key}"]`);

describe('browser: the proxy admin status page follows server state without a reload', () => {
  let dir: string;
  let context: BrowserContext;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install it with \`flock /tmp/tiergate-apt.lock apt-get install -y chromium\``);
    }
    dir = await mkdtemp(join(tmpdir(), 'tg-status-page-'));
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      timeout: 60_000,
      viewport: { width: 1400, height: 500 },
    });
  });
  afterAll(async () => {
    await context?.close();
    // The screenshot stays (its path is printed); only the browser profile goes.
    if (dir) await rm(join(dir, 'profile'), { recursive: true, force: true });
  });

  it('shows both servers up, then the stopped one down within the refresh interval', async () => {
    await using a = await startUpstream('a');
    await using b = await startUpstream('b');
    // Two workers: the page reads the cluster primary's /status, merged over them.
    using cfg = configDir(yaml([a.address, b.address], undefined, 2));
    await using proxy: ProxyProc = await startProxyProc(cfg.file);
    // A few requests, so the counters and latency columns have something to show.
    for (let i = 0; i < 6; i++) expect((await fetch(`${proxy.url}/`)).status).toBe(200);
    const page = await context.newPage();
    const response = await page.goto(`${proxy.admin}/?refresh=${REFRESH_S}`);
    expect(response?.headers()).toMatchObject({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    expect(response?.headers()['content-security-policy']).toMatch(/default-src 'none'; script-src 'sha256-/);
    // Up once the first checks have passed (a server is `up` before its first check too; the health column says when it was checked).
    for (const up of [a, b]) {
      await expect.poll(() => row(page, `app ${up.address}`).getAttribute('data-state'), { timeout: NOTICE_MS }).toBe('up');
      await expect.poll(() => row(page, `app ${up.address}`).locator('td').nth(3).textContent(), { timeout: NOTICE_MS }).toBe('healthy');
    }
    const header = await page.locator('#head th').allTextContents();
    expect(header).toEqual([
      'Pool',
      'Server',
      'State',
      'Health check',
      'Weight',
      'Active',
      'Requests',
      'Errors',
      'Latency p50 / p90 / p99 (ms)',
      'Last check',
      'Last change',
    ]);
    // A mark on this document: still there afterwards means the page changed without a navigation.
    await page.evaluate(() => {
      (globalThis as { tgMark?: string }).tgMark = 'same document';
    });

    await a[Symbol.asyncDispose]();
    await expect.poll(() => row(page, `app ${a.address}`).getAttribute('data-state'), { timeout: NOTICE_MS }).toBe('down');
    const cells = await row(page, `app ${a.address}`).locator('td').allTextContents();
    expect(cells.slice(0, 4)).toEqual(['app (weighted)', a.address, 'unhealthy', 'unhealthy']);
    expect(cells[9]).toMatch(/^failed: /);
    expect(Date.parse(cells[10]!)).not.toBeNaN();
    expect(await row(page, `app ${b.address}`).getAttribute('data-state')).toBe('up');
    const requests = await page.locator('#rows tr td:nth-child(7)').allTextContents();
    expect(requests.map(Number).reduce((x, y) => x + y)).toBe(6);
    expect(await page.locator('#summary').textContent()).toContain('workers: 2');
    expect(await page.evaluate(() => (globalThis as { tgMark?: string }).tgMark)).toBe('same document');

    const shot = join(dir, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect((await readFile(shot)).subarray(0, 8)).toEqual(PNG_SIGNATURE);
    expect(statSync(shot).size).toBeGreaterThan(2_000);
    console.log(`status page screenshot: ${shot}`);
  });

  it('with an admin token: the page loads without it, asks for it, keeps it for the tab and shows the table', async () => {
    await using up = await startUpstream('a');
    using cfg = configDir(yaml([up.address], 'page-t0ken'));
    await using proxy = await startProxyProc(cfg.file);
    const page = await context.newPage();
    await page.goto(`${proxy.admin}/?refresh=${REFRESH_S}`);
    await page.locator('#token-form').waitFor({ state: 'visible', timeout: NOTICE_MS });
    expect(await page.locator('#rows tr').count()).toBe(0);
    await page.fill('#token', 'wrong');
    await page.click('#token-form button');
    await expect.poll(() => page.textContent('#error'), { timeout: NOTICE_MS }).toBe('wrong token');
    await page.fill('#token', 'page-t0ken');
    await page.click('#token-form button');
    await expect.poll(() => row(page, `app ${up.address}`).getAttribute('data-state'), { timeout: NOTICE_MS }).toBe('up');
    expect(await page.locator('#token-form').isHidden()).toBe(true);
    // A reload of the tab keeps the token (sessionStorage), so the form stays hidden.
    await page.reload();
    await expect.poll(() => row(page, `app ${up.address}`).getAttribute('data-state'), { timeout: NOTICE_MS }).toBe('up');
  });
});

describe('browser: the director admin status page', () => {
  let dir: string;
  let context: BrowserContext;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tg-director-page-'));
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      timeout: 60_000,
      viewport: { width: 1400, height: 400 },
    });
  });
  afterAll(async () => {
    await context?.close();
    if (dir) await rm(join(dir, 'profile'), { recursive: true, force: true });
  });

  it('shows the IPVS table with health and follows a real server going down without a reload', async () => {
    const dest = { forward: 'masq', weight: 1, activeConns: 2, inactConns: 1, draining: false, stats: null };
    const table = (healthy: boolean): DirectorStatus => ({
      director: 'd1',
      cycles: 1,
      lastCycle: { at: Date.now(), kind: 'full', durationMs: 3, ops: 2, error: null },
      services: [
        {
          key: 'tcp:10.0.0.100:80',
          service: 'TCP 10.0.0.100:80',
          scheduler: 'wlc',
          persistent: false,
          timeout: 0,
          managed: true,
          stats: null,
          destinations: [
            { ...dest, server: '10.0.0.11:80', healthy: true },
            { ...dest, server: '10.0.0.12:80', healthy, weight: healthy ? 1 : 0 },
          ],
        },
      ],
    });
    let healthy = true;
    // The admin listener is real; only the Director behind it is replaced by a fixed table.
    const fixed = { readStatus: async () => table(healthy) } as unknown as Director;
    await using admin = await startDirectorAdmin(fixed, { address: '127.0.0.1', port: 0 });
    const page = await context.newPage();
    await page.goto(`${admin.url}/?refresh=${REFRESH_S}`);
    const second = row(page, 'tcp:10.0.0.100:80 10.0.0.12:80');
    await expect.poll(() => second.getAttribute('data-state'), { timeout: NOTICE_MS }).toBe('up');
    expect(await page.locator('#rows tr').count()).toBe(2);
    healthy = false;
    await expect.poll(() => second.getAttribute('data-state'), { timeout: NOTICE_MS }).toBe('down');
    expect((await second.locator('td').allTextContents()).slice(0, 5)).toEqual([
      'TCP 10.0.0.100:80 wlc',
      '10.0.0.12:80',
      'Masq',
      '0',
      'down',
    ]);
    const shot = join(dir, 'director-status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect((await readFile(shot)).subarray(0, 8)).toEqual(PNG_SIGNATURE);
    console.log(`director status page screenshot: ${shot}`);
  });
});

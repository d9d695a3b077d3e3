import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTgError } from '@tiergate/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchText, proxySection, startTestProxy } from './helpers.ts';

/** An address nothing listens on: connecting to it is refused at once (502). */
const DEAD = '127.0.0.1:1';

describe('proxy.error_pages (nginx error_page)', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tg-error-pages-'));
    writeFileSync(join(dir, '50x.html'), '<h1>We will be right back</h1>\n');
    writeFileSync(join(dir, '404.json'), '{"error":"not here"}');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const pages = () => [
    { status: [502, 503, 504], file: join(dir, '50x.html') },
    { status: [404], file: join(dir, '404.json'), content_type: 'application/json' },
  ];

  it("the proxy's own error answers of a listed status carry the page; the others keep the plain text", async () => {
    await using p = await startTestProxy({
      error_pages: pages(),
      routes: [
        { path: '/app/', pool: 'dead' },
        { path: '/admin/', pool: 'dead', access: [{ deny: 'all' }] },
      ],
      pools: { dead: { servers: [{ address: DEAD }] } },
    });
    const bad = await fetchText(`${p.url}/app/x`);
    expect(bad.status).toBe(502);
    expect(bad.body).toBe('<h1>We will be right back</h1>\n');
    expect(bad.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(bad.headers['x-tiergate-error']).toMatch(/^TG_PROXY_UPSTREAM_/);
    expect(bad.headers['x-request-id']).toMatch(/./);
    const none = await fetchText(`${p.url}/elsewhere`);
    expect([none.status, none.body, none.headers['content-type']]).toEqual([404, '{"error":"not here"}', 'application/json']);
    const denied = await fetchText(`${p.url}/admin/`);
    expect([denied.status, denied.headers['content-type']]).toEqual([403, 'text/plain; charset=utf-8']);
    expect(denied.body).toContain('TG_PROXY_FORBIDDEN');
  });

  it('a page that cannot be read refuses the start, and a reload, naming the entry; a reload re-reads the files', async () => {
    const missing = [{ status: [502], file: join(dir, 'nope.html') }];
    const refused = await startTestProxy({ error_pages: missing, pools: { dead: { servers: [{ address: DEAD }] } } }).catch(
      (e: unknown) => e,
    );
    expect(isTgError(refused) && refused.code).toBe('TG_CONFIG_INVALID');
    expect((refused as { details: { path: unknown } }).details.path).toEqual(['proxy', 'error_pages', 0, 'file']);

    const file = join(dir, 'reloaded.html');
    writeFileSync(file, 'first');
    const config = { error_pages: [{ status: [502], file }], pools: { dead: { servers: [{ address: DEAD }] } } };
    await using p = await startTestProxy(config);
    expect((await fetchText(`${p.url}/`)).body).toBe('first');
    writeFileSync(file, 'second');
    await p.proxy.reload(proxySection(config));
    expect((await fetchText(`${p.url}/`)).body).toBe('second');
    await expect(p.proxy.reload(proxySection({ ...config, error_pages: missing }))).rejects.toThrow(/nope\.html/);
    expect((await fetchText(`${p.url}/`)).body).toBe('second');
  });
});

import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningStack, type StackConfigFile, startStack, writeStackConfig } from './stack-harness.ts';

// A real browser (Debian's chromium, headless) against the REAL `tiergate up` stack: it loads the
// page, reads the captcha the page shows, signs in through the form, and keeps the login across
// reloads that round robin sends to different app processes.

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
const RELOADS = 6;

/** The captcha's characters: the demo draws each as one rotated `<text>` glyph of its SVG. */
function captchaFromSvg(svg: string): string {
  return [...svg.matchAll(/<text[^>]*>([^<])<\/text>/g)].map((m) => m[1]).join('');
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('browser: sign in through the proxy, stay signed in across instances', () => {
  let config: StackConfigFile;
  let stack: RunningStack;
  let profile: string;
  let context: BrowserContext;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: install it with \`flock /tmp/tiergate-apt.lock apt-get install -y chromium\``);
    }
    config = await writeStackConfig();
    stack = await startStack({ config: config.path });
    profile = await mkdtemp(join(tmpdir(), 'tg-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000 });
    // Chromium asks for /favicon.ico after page loads; answered here so that only the page itself takes
    // round-robin turns (otherwise every reload could land on the same instance, the favicon on the other).
    await context.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
  });
  afterAll(async () => {
    await context?.close();
    await stack?.[Symbol.asyncDispose]();
    await config?.[Symbol.asyncDispose]();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  /** Into the throwaway profile dir, or TG_SCREENSHOT_DIR to keep them for a look. */
  async function screenshot(page: Page, name: string): Promise<string> {
    // biome-ignore lint/suspicious/noUndeclaredEnvVars: test/ runs under plain vitest, not turbo (no task cache to invalidate).
    const path = join(process.env.TG_SCREENSHOT_DIR ?? profile, name);
    await page.screenshot({ path, fullPage: true });
    return path;
  }

  it('reads the captcha, logs in with the form, and keeps the user on every instance', async () => {
    const page = await context.newPage();
    // The captcha is an <img>: its SVG is not in the DOM, so read the glyphs from the response the page loaded.
    const captchaResponse = page.waitForResponse((r) => new URL(r.url()).pathname === '/captcha');
    await page.goto(`${config.proxyUrl}/`);
    const svg = await (await captchaResponse).text();
    const code = captchaFromSvg(svg);
    expect(code).toMatch(/^[A-Z2-9]{6}$/);
    const signInShot = await screenshot(page, 'sign-in.png');

    await page.fill('input[name=user]', 'alice');
    await page.fill('input[name=password]', 'wonderland');
    await page.fill('input[name=captcha]', code);
    await Promise.all([page.waitForURL(`${config.proxyUrl}/`), page.click('button:has-text("Sign in")')]);
    expect(await page.textContent('#user')).toBe('alice');

    const seen: { instance: string | null; user: string | null }[] = [];
    for (let i = 0; i < RELOADS; i++) {
      await page.reload();
      seen.push({ instance: await page.textContent('#instance'), user: await page.textContent('#user') });
    }
    expect(seen.map((s) => s.user)).toEqual(Array(RELOADS).fill('alice'));
    expect(new Set(seen.map((s) => s.instance))).toEqual(new Set(['app-1', 'app-2']));

    for (const shot of [signInShot, await screenshot(page, 'signed-in.png')]) {
      expect((await readFile(shot)).subarray(0, 8)).toEqual(PNG_SIGNATURE);
      expect(statSync(shot).size).toBeGreaterThan(2_000);
    }
  });
});

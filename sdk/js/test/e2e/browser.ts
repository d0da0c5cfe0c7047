// Drives Debian's headless Chromium with playwright-core for the browser
// suite: the demo pages served by the real binary, as a person would use
// them. Playwright's own browser download is never used (HERALD_CHROMIUM
// names another Chromium than /usr/bin/chromium).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';

export const CHROMIUM = process.env['HERALD_CHROMIUM'] ?? '/usr/bin/chromium';

// Without the background-networking flags Chromium keeps trying to reach
// Google's services, which a machine with a closed network refuses.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Starts headless Chromium with the suite's flags and any extra ones. */
export function launch(args: readonly string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...FLAGS, ...args] });
}

/** Where screenshots go: HERALD_ARTIFACTS, or artifacts/browser at the repository's root. */
export const ARTIFACTS =
  process.env['HERALD_ARTIFACTS'] ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../../artifacts/browser');

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

/**
 * Collects the page's uncaught exceptions, so a test can assert the demo
 * ran without one. Console errors are not counted: a blocked transport
 * logs them on purpose.
 */
export function pageErrors(page: Page): Error[] {
  const errors: Error[] = [];
  page.on('pageerror', (e) => errors.push(e));
  return errors;
}

/**
 * Saves a full-page screenshot as ARTIFACTS/name.png and checks it shows
 * something: decoded by the browser itself, it must have many colours and
 * no single colour covering nearly all of it. On a phone-sized viewport it
 * also checks that nothing sticks out sideways, so every demo page shot on
 * a phone is held to that.
 */
export async function screenshot(browser: Browser, page: Page, name: string): Promise<string> {
  const viewport = page.viewportSize();
  if (viewport && viewport.width <= PHONE.width) {
    const overflow = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth - window.innerWidth,
      body: document.body.scrollWidth - window.innerWidth,
    }));
    expect(Math.max(overflow.page, overflow.body), `${name}: px sticking out sideways on a ${viewport.width} px wide screen`).toBeLessThanOrEqual(1);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, `${name}.png`);
  const png = await page.screenshot({ fullPage: true });
  writeFileSync(file, png);
  const decoder = await browser.newPage();
  try {
    const stats = await decoder.evaluate(async (b64: string) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext('2d')!;
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      const counts = new Map<number, number>();
      for (let i = 0; i < px.length; i += 4) {
        const rgb = (px[i]! << 16) | (px[i + 1]! << 8) | px[i + 2]!;
        counts.set(rgb, (counts.get(rgb) ?? 0) + 1);
      }
      let dominant = 0;
      for (const n of counts.values()) dominant = Math.max(dominant, n);
      return { width: img.width, height: img.height, colors: counts.size, dominant: dominant / (px.length / 4) };
    }, png.toString('base64'));
    expect(stats.width, `${name}.png width`).toBeGreaterThan(0);
    // Antialiased text alone gives dozens of colours; a blank or
    // single-colour page gives one or two.
    expect(stats.colors, `${name}.png: distinct colours`).toBeGreaterThan(40);
    expect(stats.dominant, `${name}.png: share of the most common colour`).toBeLessThan(0.97);
  } finally {
    await decoder.close();
  }
  return file;
}

/** Waits until fn, evaluated in the page, returns something truthy. */
export async function pageWait<A>(page: Page, what: string, fn: (arg: A) => unknown, arg: A, timeout = 20_000): Promise<void> {
  try {
    await page.waitForFunction(fn as (arg: unknown) => unknown, arg as unknown, { timeout, polling: 50 });
  } catch (e) {
    throw new Error(`timed out after ${timeout} ms waiting for ${what}: ${(e as Error).message.split('\n')[0]}`);
  }
}

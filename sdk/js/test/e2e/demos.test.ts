// Every demo page works in a browser, on a desktop and on a phone-sized
// screen, and leaves a screenshot showing it.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';
import { DESKTOP, PHONE, launch, pageErrors, pageWait, screenshot } from './browser.js';

let server: HeraldServer;
let browser: Browser;

beforeAll(async () => {
  server = await HeraldServer.start({ env: { HERALD_DEMO_TICKER: '200ms' } });
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

type Demo = {
  client: { transport: string | null; state: string };
  cursors?: { stamps: number };
  transports?: { rtts: Record<string, number> };
  ticker?: { received: number };
};
type DemoWindow = { demo?: Demo };

async function open(path: string, viewport = DESKTOP): Promise<{ page: Page; errors: Error[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.goto(`${server.url}${path}`);
  return { page, errors };
}

describe('demo pages', () => {
  it('the index page shows what a backend publishes, live', async () => {
    for (const [viewport, name] of [
      [DESKTOP, 'index-desktop'],
      [PHONE, 'index-phone'],
    ] as const) {
      const { page, errors } = await open('/', viewport);
      await pageWait(page, 'the client to connect', () => (window as unknown as DemoWindow).demo?.client.state === 'connected', null);
      const text = `from curl ${name}`;
      // The subscription may still be on its way: publish until it shows.
      await pageWait(page, 'the live box to be ready', () => !!document.querySelector('#live'), null);
      const shown = page.locator('#live', { hasText: text });
      for (let i = 0; i < 50 && !(await shown.isVisible()); i++) {
        await server.publish('chat:demo', { text });
        await shown.waitFor({ timeout: 200 }).catch(() => undefined);
      }
      await shown.waitFor({ timeout: 5_000 });
      expect(await page.locator('a[href*="chat"]').count()).toBeGreaterThan(0);
      expect(await page.locator('.demo-card[href="call.html"]').count()).toBe(1);
      await screenshot(browser, page, name);
      expect(errors).toEqual([]);
      await page.context().close();
    }
  });

  it('collaborative cursors: others see my cursor move, and stamps are shared and kept', async () => {
    const room = `cur${Date.now()}`;
    const alice = await open(`/cursors.html?room=${room}&name=alice`);
    const bob = await open(`/cursors.html?room=${room}&name=bob`, PHONE);
    for (const p of [alice.page, bob.page]) {
      await pageWait(p, 'the client to connect', () => (window as unknown as DemoWindow).demo?.client.state === 'connected', null);
    }
    const board = await alice.page.locator('#board').boundingBox();
    expect(board).not.toBeNull();
    const cursor = bob.page.locator('.cursor[data-user="alice"]');
    // Moves are ephemeral: only those after bob subscribed reach him, so
    // keep moving until one does.
    for (let i = 0; i < 100 && !(await cursor.isVisible()); i++) {
      await alice.page.mouse.move(board!.x + 20 + (i % 50) * 4, board!.y + 30 + (i % 20) * 3);
      await cursor.waitFor({ timeout: 100 }).catch(() => undefined);
    }
    await cursor.waitFor({ timeout: 5_000 });

    await alice.page.mouse.click(board!.x + board!.width / 2, board!.y + board!.height / 2);
    await pageWait(bob.page, 'alice\'s stamp', () => ((window as unknown as DemoWindow).demo?.cursors?.stamps ?? 0) >= 1, null);
    await screenshot(browser, bob.page, 'cursors-phone');

    // A newcomer finds the stamp in history.
    const carol = await open(`/cursors.html?room=${room}&name=carol`);
    await pageWait(carol.page, 'the stamp from history', () => ((window as unknown as DemoWindow).demo?.cursors?.stamps ?? 0) >= 1, null);
    await screenshot(browser, alice.page, 'cursors-desktop');
    for (const p of [alice, bob, carol]) {
      expect(p.errors).toEqual([]);
      await p.page.context().close();
    }
  });

  it('the transport panel forces each transport and measures round trips over it', async () => {
    const { page, errors } = await open('/transports.html');
    for (const t of ['longpoll', 'shortpoll', 'sse', 'websocket'] as const) {
      await page.locator(`button[data-transport="${t}"]`).click();
      await pageWait(
        page,
        `a round trip over ${t}`,
        (want: string) => {
          const d = (window as unknown as DemoWindow).demo;
          return d?.client.transport === want && d.client.state === 'connected' && (d.transports?.rtts[want] ?? 0) > 0;
        },
        t,
      );
      await page.locator('#transport-badge', { hasText: t }).waitFor({ timeout: 5_000 });
    }
    await page.locator('button[data-transport="auto"]').click();
    await pageWait(page, 'auto to pick websocket', () => (window as unknown as DemoWindow).demo?.client.transport === 'websocket', null);
    expect(await page.locator('#rtt').textContent()).toMatch(/\d/);
    await screenshot(browser, page, 'transports-desktop');
    await page.setViewportSize(PHONE);
    await screenshot(browser, page, 'transports-phone');
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('the ticker page and the chat page render on a phone', async () => {
    const ticker = await open('/ticker.html', PHONE);
    await pageWait(ticker.page, 'five ticks', () => ((window as unknown as DemoWindow).demo?.ticker?.received ?? 0) >= 5, null);
    await screenshot(browser, ticker.page, 'ticker-phone');
    const chat = await open(`/chat.html?room=shots${Date.now()}&name=dana`, PHONE);
    await chat.page.locator('#presence li[data-user="dana"]').waitFor({ timeout: 20_000 });
    await screenshot(browser, chat.page, 'chat-alone-phone');
    for (const p of [ticker, chat]) {
      expect(p.errors).toEqual([]);
      await p.page.context().close();
    }
  });
});

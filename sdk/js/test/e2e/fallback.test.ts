// A network that blocks WebSocket, then SSE: the page's client falls back
// to SSE, then to long polling, and chat keeps working both ways.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';
import { DESKTOP, launch, pageErrors, pageWait, screenshot } from './browser.js';

let server: HeraldServer;
let browser: Browser;

beforeAll(async () => {
  server = await HeraldServer.start({ env: { HERALD_DEMO_TICKER: '0' } });
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

type DemoWindow = { demo?: { client?: { transport: string | null; state: string } } };

function transportIs(page: Page, name: string): Promise<void> {
  return pageWait(
    page,
    `the client to be connected over ${name}`,
    (want: string) => {
      const c = (window as unknown as DemoWindow).demo?.client;
      return c?.transport === want && c.state === 'connected';
    },
    name,
  );
}

async function say(page: Page, text: string): Promise<void> {
  await page.locator('#text').fill(text);
  await page.locator('#send').click();
}

async function sees(page: Page, user: string, text: string): Promise<void> {
  await page.locator(`#messages .message[data-user="${user}"] .text`, { hasText: text }).waitFor({ timeout: 20_000 });
}

describe('transport fallback in the browser', () => {
  it('falls back from a blocked WebSocket to SSE, then from blocked SSE to long polling, and still sends and receives', async () => {
    const room = `fallback${Date.now()}`;
    const bobContext = await browser.newContext({ viewport: DESKTOP });
    const bob = await bobContext.newPage();
    await bob.goto(`${server.url}/chat.html?room=${room}&name=bob`);
    await transportIs(bob, 'websocket');

    const context = await browser.newContext({ viewport: DESKTOP });
    const blockedWS: string[] = [];
    // The handshake reaches no server: the socket is refused at once, as
    // a proxy that drops upgrades would do.
    await context.routeWebSocket(/\/ws(\?|$)/, (ws) => {
      blockedWS.push(ws.url());
      void ws.close({ code: 1011, reason: 'blocked by the test' });
    });
    const alice = await context.newPage();
    const errors = pageErrors(alice);
    await alice.goto(`${server.url}/chat.html?room=${room}&name=alice`);

    await transportIs(alice, 'sse');
    expect(blockedWS.length).toBeGreaterThan(0);
    await alice.locator('#transport-badge', { hasText: 'sse' }).waitFor({ timeout: 5_000 });
    await say(alice, 'sent over sse');
    await sees(bob, 'alice', 'sent over sse');
    await say(bob, 'received over sse');
    await sees(alice, 'bob', 'received over sse');

    // Now SSE is blocked too, and the network drops for a moment, which
    // ends the running stream.
    let blockedSSE = 0;
    await context.route(/\/sse(\?|$)/, (route) => {
      blockedSSE++;
      void route.abort('connectionrefused');
    });
    await context.setOffline(true);
    await pageWait(alice, 'the client to notice it is offline', () => (window as unknown as DemoWindow).demo?.client?.state !== 'connected', null);
    await context.setOffline(false);

    await transportIs(alice, 'longpoll');
    expect(blockedSSE).toBeGreaterThan(0);
    await alice.locator('#transport-badge', { hasText: 'longpoll' }).waitFor({ timeout: 5_000 });
    await say(alice, 'sent over long polling');
    await sees(bob, 'alice', 'sent over long polling');
    await say(bob, 'received over long polling');
    await sees(alice, 'bob', 'received over long polling');

    // Nothing was shown twice on either side.
    for (const page of [alice, bob]) {
      const offsets = await page.locator('#messages .message').evaluateAll((els) => els.map((e) => e.getAttribute('data-offset')));
      expect(new Set(offsets).size, `offsets ${offsets.join(',')}`).toBe(offsets.length);
      expect(offsets.length).toBe(4);
    }
    await screenshot(browser, alice, 'fallback-longpoll');
    expect(errors).toEqual([]);
  });
});

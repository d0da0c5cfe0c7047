// A network that blocks WebSocket, then SSE: the page's client falls back
// to SSE, then to long polling, and chat keeps working both ways; once the
// network lets WebSocket through again, the page upgrades back to it.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';
import { DESKTOP, launch, pageErrors, pageWait, screenshot } from './browser.js';
import { chatMessage, connectedOver, say } from './chatpage.js';

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

type DemoWindow = {
  demo?: { client?: { transport: string | null; state: string } };
  /** Every transport event of the page's client, recorded by shortUpgradeInterval. */
  transports?: { transport: string; reason: string }[];
};

const UPGRADE_INTERVAL = 300;

/**
 * Runs in the page before its scripts: wraps the SDK's Client, once the
 * bundle defines the Herald global, so that every client the page makes
 * tries a better transport every `ms` milliseconds and records its
 * transport events.
 */
function shortUpgradeInterval(ms: number): void {
  type Ctor = new (opts?: Record<string, unknown>) => { on(ev: string, fn: (e: never) => void): void };
  const w = window as unknown as { Herald?: { Client: Ctor } } & DemoWindow;
  let herald: { Client: Ctor } | undefined;
  w.transports = [];
  Object.defineProperty(window, 'Herald', {
    configurable: true,
    get: () => herald,
    set: (sdk: { Client: Ctor }) => {
      const Base = sdk.Client;
      class Client extends Base {
        constructor(opts: Record<string, unknown> = {}) {
          super({ ...opts, upgradeInterval: ms });
          this.on('transport', (e: { transport: string; reason: string }) => w.transports!.push({ transport: e.transport, reason: e.reason }));
        }
      }
      herald = { ...sdk, Client };
    },
  });
}

async function sees(page: Page, user: string, text: string): Promise<void> {
  await chatMessage(page, user, text).waitFor({ timeout: 20_000 });
}

describe('transport fallback in the browser', () => {
  it('falls back from a blocked WebSocket to SSE, then from blocked SSE to long polling, upgrades back to WebSocket once unblocked, and still sends and receives', async () => {
    const room = `fallback${Date.now()}`;
    const bobContext = await browser.newContext({ viewport: DESKTOP });
    const bob = await bobContext.newPage();
    await bob.goto(`${server.url}/chat.html?room=${room}&name=bob`);
    await connectedOver(bob, 'websocket');

    const context = await browser.newContext({ viewport: DESKTOP });
    const blocked = { ws: true };
    const blockedWS: string[] = [];
    // The handshake reaches no server: the socket is refused at once, as
    // a proxy that drops upgrades would do. Once unblocked, sockets go
    // through to the server untouched.
    await context.routeWebSocket(/\/ws(\?|$)/, (ws) => {
      if (!blocked.ws) {
        ws.connectToServer();
        return;
      }
      blockedWS.push(ws.url());
      void ws.close({ code: 1011, reason: 'blocked by the test' });
    });
    const alice = await context.newPage();
    // The demo keeps the SDK's default upgrade interval (a minute); the
    // test makes it short, so that going back to WebSocket is seen soon.
    await alice.addInitScript(shortUpgradeInterval, UPGRADE_INTERVAL);
    const errors = pageErrors(alice);
    await alice.goto(`${server.url}/chat.html?room=${room}&name=alice`);

    await connectedOver(alice, 'sse');
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

    await connectedOver(alice, 'longpoll');
    expect(blockedSSE).toBeGreaterThan(0);
    await alice.locator('#transport-badge', { hasText: 'longpoll' }).waitFor({ timeout: 5_000 });
    await say(alice, 'sent over long polling');
    await sees(bob, 'alice', 'sent over long polling');
    await say(bob, 'received over long polling');
    await sees(alice, 'bob', 'received over long polling');

    await screenshot(browser, alice, 'fallback-longpoll');

    // The network lets WebSocket through again (SSE stays blocked, so the
    // way back up is straight to WebSocket): the next upgrade probe finds
    // it working and the page goes back to it, and chat still works both
    // ways.
    blocked.ws = false;
    await connectedOver(alice, 'websocket');
    await alice.locator('#transport-badge', { hasText: 'websocket' }).waitFor({ timeout: 5_000 });
    await say(alice, 'sent over websocket again');
    await sees(bob, 'alice', 'sent over websocket again');
    await say(bob, 'received over websocket again');
    await sees(alice, 'bob', 'received over websocket again');
    const transports = await alice.evaluate(() => (window as unknown as DemoWindow).transports!.map((t) => `${t.transport}:${t.reason}`));
    expect(transports).toEqual(['sse:initial', 'longpoll:fallback', 'websocket:upgrade']);

    // Nothing was shown twice on either side.
    for (const page of [alice, bob]) {
      const offsets = await page.locator('#messages .message').evaluateAll((els) => els.map((e) => e.getAttribute('data-offset')));
      expect(new Set(offsets).size, `offsets ${offsets.join(',')}`).toBe(offsets.length);
      expect(offsets.length).toBe(6);
    }
    expect(errors).toEqual([]);
  });
});

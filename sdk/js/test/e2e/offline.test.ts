// The browser goes offline: the page's client says so, stops trying to
// reach the server (no request while offline: not on a transport's path,
// not for a fresh token),
// and reconnects at once when the browser is back online, resuming what
// it missed.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';
import { DESKTOP, launch, pageErrors, pageWait } from './browser.js';
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

type Client = { transport: string | null; state: string; on(ev: string, fn: (e: { reason?: string }) => void): void };
type DemoWindow = { demo?: { client?: Client }; offlineSeen?: string[] };

const TRANSPORT_PATH = /^\/(ws|sse|poll)$/;

describe('offline in the browser', () => {
  for (const transport of ['websocket', 'longpoll'] as const) {
    it(`over ${transport}: reports offline, sends nothing while offline, reconnects at once when online`, async () => {
      const room = `off${transport}${Date.now()}`;
      const bobContext = await browser.newContext({ viewport: DESKTOP });
      const bob = await bobContext.newPage();
      await bob.goto(`${server.url}/chat.html?room=${room}&name=bob`);

      const context = await browser.newContext({ viewport: DESKTOP });
      const alice = await context.newPage();
      const errors = pageErrors(alice);
      const force = transport === 'websocket' ? '' : `&transport=${transport}`;
      await alice.goto(`${server.url}/chat.html?room=${room}&name=alice${force}`);
      await connectedOver(alice, transport);
      await say(alice, 'before going offline');
      await chatMessage(bob, 'alice', 'before going offline').waitFor({ timeout: 20_000 });

      // Every request the page makes to the server once the client knows
      // it is offline (a transport's endpoint, or the token a reconnect
      // fetches first: none should be tried), and the transports' requests
      // once it is back online.
      let offline = false;
      const whileOffline: string[] = [];
      const afterOnline: string[] = [];
      const onRequest = (url: string) => {
        const u = new URL(url);
        if (u.host !== new URL(server.url).host) return;
        if (offline) whileOffline.push(u.pathname);
        else if (TRANSPORT_PATH.test(u.pathname)) afterOnline.push(u.pathname);
      };
      alice.on('request', (r) => onRequest(r.url()));
      alice.on('websocket', (ws) => onRequest(ws.url()));
      await alice.evaluate(() => {
        const w = window as unknown as DemoWindow;
        w.offlineSeen = [];
        w.demo!.client!.on('connecting', (e) => w.offlineSeen!.push(e.reason ?? ''));
      });

      await context.setOffline(true);
      await pageWait(
        alice,
        'the client to report it is offline',
        () => {
          const w = window as unknown as DemoWindow;
          return w.demo?.client?.state === 'connecting' && (w.offlineSeen ?? []).includes('offline');
        },
        null,
        10_000,
      );
      offline = true;
      await alice.locator('#transport-badge[data-state="connecting"]').waitFor({ timeout: 5_000 });

      // While alice is offline, bob talks: each of his messages makes a
      // round trip through the server, which gives alice's client time to
      // (wrongly) retry, falling back through every transport at once.
      for (const n of [1, 2, 3]) {
        await say(bob, `missed ${n}`);
        await chatMessage(bob, 'bob', `missed ${n}`).waitFor({ timeout: 10_000 });
      }
      expect(await alice.evaluate(() => (window as unknown as DemoWindow).demo!.client!.state)).toBe('connecting');
      expect(await chatMessage(alice, 'bob', 'missed').count()).toBe(0);

      offline = false;
      expect(whileOffline).toEqual([]);
      afterOnline.length = 0;
      const back = Date.now();
      await context.setOffline(false);
      // No backoff delay is owed after the network comes back.
      await pageWait(
        alice,
        'the client to reconnect',
        (want: string) => {
          const c = (window as unknown as DemoWindow).demo?.client;
          return c?.transport === want && c.state === 'connected';
        },
        transport,
        5_000,
      );
      expect(Date.now() - back).toBeLessThan(3_000);
      // The same watch does see the client's requests once it is online.
      expect(afterOnline.length).toBeGreaterThan(0);

      // What bob said meanwhile comes back from history, once each.
      for (const n of [1, 2, 3]) await chatMessage(alice, 'bob', `missed ${n}`).waitFor({ timeout: 10_000 });
      await say(alice, 'back online');
      await chatMessage(bob, 'alice', 'back online').waitFor({ timeout: 10_000 });
      // Alice's own message shows once the server echoes it to her, which
      // may be after bob's page has it.
      await chatMessage(alice, 'alice', 'back online').waitFor({ timeout: 10_000 });
      const offsets = await alice.locator('#messages .message').evaluateAll((els) => els.map((e) => e.getAttribute('data-offset')));
      expect(offsets.length).toBe(5);
      expect(new Set(offsets).size).toBe(5);
      expect(errors).toEqual([]);
      await context.close();
      await bobContext.close();
    });
  }
});

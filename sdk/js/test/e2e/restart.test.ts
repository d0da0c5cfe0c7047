// The ticker page keeps going through a server restart: the server is
// killed mid-stream (kill -9) and started again on the same store, ticks
// while the page cannot reach it yet, and the page resumes through
// recovery with every tick once, in order.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';
import { DESKTOP, PHONE, launch, pageErrors, pageWait, screenshot } from './browser.js';

let server: HeraldServer;
let browser: Browser;

beforeAll(async () => {
  server = await HeraldServer.start({ engine: 'durable', env: { HERALD_DEMO_TICKER: '100ms' } });
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

interface TickerStats {
  received: number;
  /** How the last resume went: 'recovered', 'not recovered', or '—' before any. */
  resume: string;
  gaps: number;
  duplicates: number;
  lastOffset: number;
  reconnects: number;
  notRecovered: number;
  epochChanges: number;
  offsets: number[];
}

type DemoWindow = { demo?: { ticker?: TickerStats; client?: { transport: string | null } } };

describe('ticker demo through a server restart', () => {
  for (const transport of ['sse', 'websocket', 'longpoll'] as const) {
    it(`resumes over ${transport} with no tick lost or repeated`, async () => {
      const context = await browser.newContext({ viewport: transport === 'sse' ? DESKTOP : PHONE });
      // While `blocked`, the page cannot reach the server on any transport,
      // so the server ticks for a while with the page away.
      const net = { blocked: false };
      await context.routeWebSocket(/\/ws(\?|$)/, (ws) => {
        if (net.blocked) void ws.close({ code: 1011, reason: 'blocked by the test' });
        else ws.connectToServer();
      });
      await context.route(/\/(sse|poll)(\?|$)/, (route) => {
        if (net.blocked) void route.abort('connectionrefused');
        else void route.continue();
      });
      const page = await context.newPage();
      const errors = pageErrors(page);
      // SSE is the page's own choice; the others are forced.
      await page.goto(`${server.url}/ticker.html${transport === 'sse' ? '' : `?transport=${transport}`}`);

      const stats = () => page.evaluate(() => (window as unknown as DemoWindow).demo!.ticker!);
      await pageWait(page, 'ten ticks', () => ((window as unknown as DemoWindow).demo?.ticker?.received ?? 0) >= 10, null);
      expect(await page.evaluate(() => (window as unknown as DemoWindow).demo!.client!.transport)).toBe(transport);

      net.blocked = true;
      await server.restart('SIGKILL');
      const before = await stats();
      // The restarted server publishes ticks the page cannot see yet: they
      // can reach it only through recovery.
      const latest = async () => (await server.api<{ offset: number }>('history', { channel: 'demo:ticker', limit: 1 })).offset;
      await waitFor(`3 ticks after offset ${before.lastOffset} from the restarted server`, async () => (await latest()) >= before.lastOffset + 3);
      const missedUpTo = await latest();
      expect((await stats()).lastOffset).toBe(before.lastOffset);
      net.blocked = false;
      // Ticks the server published while the page was away come back from
      // history, then live ones follow.
      await pageWait(
        page,
        'a reconnect and twenty more ticks',
        (min: number) => {
          const t = (window as unknown as DemoWindow).demo?.ticker;
          return !!t && t.reconnects >= 1 && t.received >= min;
        },
        before.received + 20,
        30_000,
      );

      const after = await stats();
      expect({ gaps: after.gaps, duplicates: after.duplicates, notRecovered: after.notRecovered, epochChanges: after.epochChanges }).toEqual({
        gaps: 0,
        duplicates: 0,
        notRecovered: 0,
        epochChanges: 0,
      });
      // The resume recovered (the page's subscribed event said so), and
      // brought every tick published while the page was away.
      expect(await page.evaluate(() => (window as unknown as DemoWindow).demo!.ticker!.resume)).toBe('recovered');
      for (let o = before.lastOffset + 1; o <= missedUpTo; o++) expect(after.offsets, `tick ${o}, published while away`).toContain(o);
      // Counted independently of the page's own counters: every offset
      // from the first to the last, once, in order.
      const first = after.offsets[0]!;
      expect(after.offsets).toEqual(Array.from({ length: after.offsets.length }, (_, i) => first + i));
      // And the server's history agrees: the page saw every stored tick
      // in that range.
      const history = await server.api<{ publications: { offset: number }[] }>('history', {
        channel: 'demo:ticker',
        since: { offset: first - 1, epoch: (await server.api<{ epoch: string }>('history', { channel: 'demo:ticker', limit: 1 })).epoch },
        limit: after.offsets.length,
      });
      expect(history.publications.map((p) => p.offset)).toEqual(after.offsets);

      await screenshot(browser, page, `ticker-${transport}`);
      expect(errors).toEqual([]);
      await context.close();
    });
  }
});

// The ticker page keeps going through a server restart: the server is
// killed mid-stream (kill -9) and started again on the same store, and the
// page resumes with every tick once, in order.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';
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
      const page = await context.newPage();
      const errors = pageErrors(page);
      // SSE is the page's own choice; the others are forced.
      await page.goto(`${server.url}/ticker.html${transport === 'sse' ? '' : `?transport=${transport}`}`);

      const stats = () => page.evaluate(() => (window as unknown as DemoWindow).demo!.ticker!);
      await pageWait(page, 'ten ticks', () => ((window as unknown as DemoWindow).demo?.ticker?.received ?? 0) >= 10, null);
      expect(await page.evaluate(() => (window as unknown as DemoWindow).demo!.client!.transport)).toBe(transport);

      await server.restart('SIGKILL');
      const before = await stats();
      // Ticks the server published while the page was reconnecting come
      // back from history, then live ones follow.
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

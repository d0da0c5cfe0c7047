// The video call demo page as the call tests drive it: open it in a
// browser context of its own, join, and wait for a peer's video to play.
import type { Browser, Page } from 'playwright-core';
import { DESKTOP, pageErrors, pageWait } from './browser.js';

export type CallWindow = { demo?: { call?: { joined: boolean; full: boolean; errors: string[] } } };

/**
 * Opens the call page of room as name, forcing the TURN relay (?relay=1),
 * and waits until it may join.
 */
export async function openCall(
  browser: Browser,
  base: string,
  name: string,
  room: string,
  viewport = DESKTOP,
): Promise<{ page: Page; errors: Error[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.goto(`${base}/call.html?name=${name}&relay=1#${room}`);
  await page.locator('#join:not([disabled])').waitFor({ timeout: 15_000 });
  return { page, errors };
}

/** Joins the call and waits until the page says it has. */
export async function joinCall(page: Page): Promise<void> {
  await page.locator('#join').click();
  await pageWait(page, 'joined', () => (window as unknown as CallWindow).demo?.call?.joined === true, null);
}

/**
 * Waits until the video of user's tile plays on from now: over successive
 * polls its decoded frame count grows by 15, its currentTime moves on, and
 * at least three different pictures are drawn from it. On failure the
 * error adds what state() says of the page.
 */
export async function videoPlays(page: Page, user: string, what: string, state: () => Promise<string>): Promise<void> {
  await page.evaluate((u) => delete (window as unknown as { watched?: Record<string, unknown> }).watched?.[u], user);
  await pageWait(
    page,
    what,
    (u: string) => {
      const v = document.querySelector<HTMLVideoElement>(`.tile[data-user="${u}"] video`);
      if (!v || v.videoWidth === 0) return false;
      const w = window as unknown as { watched?: Record<string, { frames: number; time: number; pictures: Set<number> }> };
      const frames = v.getVideoPlaybackQuality().totalVideoFrames;
      const seen = ((w.watched ??= {})[u] ??= { frames, time: v.currentTime, pictures: new Set() });
      const c = document.createElement('canvas');
      c.width = 32;
      c.height = 24;
      const ctx = c.getContext('2d')!;
      ctx.drawImage(v, 0, 0, c.width, c.height);
      let hash = 0;
      for (const b of ctx.getImageData(0, 0, c.width, c.height).data) hash = (hash * 31 + b) >>> 0;
      seen.pictures.add(hash);
      return frames >= seen.frames + 15 && v.currentTime > seen.time && seen.pictures.size >= 3;
    },
    user,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await state()}`);
  });
}

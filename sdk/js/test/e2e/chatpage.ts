// The chat demo page as the browser tests drive it: send a line, find a
// message, and wait for the page's client to be connected over a transport.
import type { Locator, Page } from 'playwright-core';
import { pageWait } from './browser.js';

type DemoWindow = { demo?: { client?: { transport: string | null; state: string } } };

/** Sends text from the chat page's input. */
export async function say(page: Page, text: string): Promise<void> {
  await page.locator('#text').fill(text);
  await page.locator('#send').click();
}

/** The messages from user whose text contains text. */
export function chatMessage(page: Page, user: string, text: string): Locator {
  return page.locator(`#messages .message[data-user="${user}"] .text`, { hasText: text });
}

/** Waits until the page's client is connected over transport name. */
export function connectedOver(page: Page, name: string): Promise<void> {
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

// Two people chat in the demo: each in a browser context of their own, as
// two separate browsers would be.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';
import { DESKTOP, PHONE, launch, pageErrors, pageWait, screenshot } from './browser.js';
import { chatMessage, say } from './chatpage.js';

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

async function openChat(name: string, room: string, viewport = DESKTOP): Promise<{ page: Page; errors: Error[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.goto(`${server.url}/chat.html?room=${room}&name=${name}`);
  return { page, errors };
}

function presenceOf(page: Page, user: string) {
  return page.locator(`#presence li[data-user="${user}"]`);
}

describe('chat demo', () => {
  it('two people see each other, each other\'s typing and messages, and history on join', async () => {
    const room = `e2e${Date.now()}`;
    // Something to find in history before anyone joins.
    await server.publish(`chat:${room}`, { text: 'welcome to the room' });

    const alice = await openChat('alice', room);
    const bob = await openChat('bob', room, PHONE);

    for (const [p, who] of [[alice.page, 'bob'], [bob.page, 'alice']] as const) {
      await p.locator('#messages .message .text', { hasText: 'welcome to the room' }).waitFor({ timeout: 20_000 });
      await presenceOf(p, who).waitFor({ timeout: 20_000 });
    }

    // Typing shows on the other side, both ways, never on one's own
    // page, and is never stored.
    await alice.page.locator('#text').pressSequentially('hel', { delay: 30 });
    await bob.page.locator('#typing', { hasText: 'alice' }).waitFor({ timeout: 10_000 });
    await bob.page.locator('#text').pressSequentially('hey', { delay: 30 });
    await alice.page.locator('#typing', { hasText: 'bob' }).waitFor({ timeout: 10_000 });
    expect(await alice.page.locator('#typing').textContent()).not.toContain('alice');
    expect(await bob.page.locator('#typing').textContent()).not.toContain('bob');

    await alice.page.locator('#text').fill('');
    await bob.page.locator('#text').fill('');
    await say(alice.page, 'hello bob');
    await chatMessage(bob.page, 'alice', 'hello bob').waitFor({ timeout: 10_000 });
    await chatMessage(alice.page, 'alice', 'hello bob').waitFor({ timeout: 10_000 });
    await say(bob.page, 'hi alice');
    await chatMessage(alice.page, 'bob', 'hi alice').waitFor({ timeout: 10_000 });

    const history = await server.api<{ publications: { data: { text?: string; typing?: boolean } }[] }>('history', {
      channel: `chat:${room}`,
    });
    const texts = history.publications.map((p) => p.data.text);
    expect(texts).toEqual(['welcome to the room', 'hello bob', 'hi alice']);
    expect(history.publications.some((p) => p.data.typing)).toBe(false);

    // Someone joining later gets the conversation from history, once each.
    const carol = await openChat('carol', room);
    await chatMessage(carol.page, 'bob', 'hi alice').waitFor({ timeout: 20_000 });
    await presenceOf(carol.page, 'alice').waitFor({ timeout: 10_000 });
    await presenceOf(alice.page, 'carol').waitFor({ timeout: 10_000 });
    expect(await carol.page.locator('#messages .message').count()).toBe(3);

    // Leaving shows too.
    await carol.page.context().close();
    await pageWait(alice.page, 'carol to leave', () => !document.querySelector('#presence li[data-user="carol"]'), null);

    await screenshot(browser, alice.page, 'chat-desktop');
    await screenshot(browser, bob.page, 'chat-phone');
    expect(alice.errors).toEqual([]);
    expect(bob.errors).toEqual([]);
    expect(carol.errors).toEqual([]);
  });
});

// The admin UI, as an operator uses it: log in, watch the overview follow
// traffic live (its stats come through Herald itself), browse a channel's
// history and presence, publish from the form, renew the session, and list
// the connections to unsubscribe and disconnect one.
import { statSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newClient, record, subscribed } from '../helpers/client.js';
import { HeraldServer } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';
import { DESKTOP, PHONE, launch, pageErrors, pageWait, screenshot } from './browser.js';

const PASSWORD = 'admin-e2e-password';
const CHANNEL = 'adm:room';

let server: HeraldServer;
let browser: Browser;

beforeAll(async () => {
  server = await HeraldServer.start({
    env: {
      HERALD_DEMO_TICKER: '0',
      HERALD_ADMIN__ENABLED: 'true',
      HERALD_ADMIN__PASSWORD: PASSWORD,
      HERALD_ADMIN__SECRET: 'admin-e2e-secret-admin-e2e-secret-0123',
    },
  });
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

type AdminWindow = {
  heraldAdmin?: { snapshots: number; series: { in: number; out: number }[]; token: string | null; renew: () => Promise<void> };
};

/** A dev-mode connection token naming user. */
async function demoToken(user: string): Promise<string> {
  const res = await fetch(`${server.url}/demo/token`, { method: 'POST', body: JSON.stringify({ user }) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

async function login(viewport: { width: number; height: number }): Promise<{ page: Page; errors: Error[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.goto(`${server.url}/admin/`);
  await page.locator('#password').fill(PASSWORD);
  await page.locator('#login-form button[type="submit"]').click();
  await pageWait(page, 'the live connection', () => document.querySelector<HTMLElement>('#live')?.dataset['state'] === 'on', null);
  return { page, errors };
}

async function shoot(page: Page, name: string): Promise<void> {
  // A full-page shot of a scrolled page would show the sticky header mid-page.
  await page.evaluate(() => window.scrollTo(0, 0));
  const file = await screenshot(browser, page, name);
  expect(statSync(file).size).toBeGreaterThan(0);
}

describe('admin UI', () => {
  it('refuses a wrong password', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(`${server.url}/admin/`);
    await page.locator('#password').fill('not the password');
    await page.locator('#login-form button[type="submit"]').click();
    await page.locator('#login-error', { hasText: 'wrong password' }).waitFor({ timeout: 5_000 });
    expect(await page.locator('#overview').isVisible()).toBe(false);
    await context.close();
  });

  it('shows live stats, browses a channel, publishes, and disconnects a connection', async () => {
    const { page, errors } = await login(DESKTOP);
    await pageWait(page, 'a stats snapshot', () => ((window as unknown as AdminWindow).heraldAdmin?.snapshots ?? 0) >= 1, null);

    const carol = newClient(server.url, 'websocket', { token: await demoToken('carol') });
    const sub = carol.newSubscription(CHANNEL);
    const got = record(sub);
    carol.connect();
    await subscribed(sub);
    for (let i = 1; i <= 25; i++) await server.publish(CHANNEL, { n: i });
    await waitFor('carol received the publications', () => got.pubs.length === 25);

    // The chart and counters follow the traffic: published and delivered
    // rates above zero, two connections (the admin's and carol's).
    await pageWait(page, 'the chart to show the publications', () => {
      const series = (window as unknown as AdminWindow).heraldAdmin?.series ?? [];
      return series.some((p) => p.in > 0) && series.some((p) => p.out > 0);
    }, null);
    await pageWait(page, 'two connections counted', () => document.querySelector('#s-clients')?.textContent === '2', null);
    expect(await page.locator('#line-in').getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+( L[\d.]+ [\d.]+)+$/);
    expect(await page.locator('#transports td', { hasText: 'websocket' }).count()).toBe(1);
    expect(await page.locator('#s-nodes').textContent()).toBe('1');
    await shoot(page, 'admin-overview-desktop');

    // The session renews (the UI does so ahead of its expiry): a fresh token
    // that the rest of this test runs on.
    const before = await page.evaluate(() => (window as unknown as AdminWindow).heraldAdmin?.token);
    await page.evaluate(() => (window as unknown as AdminWindow).heraldAdmin?.renew());
    const after = await page.evaluate(() => (window as unknown as AdminWindow).heraldAdmin?.token);
    expect(after).toBeTruthy();
    expect(after).not.toBe(before);
    expect(await page.evaluate(() => sessionStorage.getItem('herald-admin-token'))).toBe(after);

    // Channel browser: the channel with its subscriber, presence and history, paged.
    await page.locator('#tabs button[data-tab="channels"]').click();
    const row = page.locator(`#channel-list tr[data-channel="${CHANNEL}"]`);
    await row.waitFor({ timeout: 5_000 });
    expect(await row.locator('td.num').first().textContent()).toBe('1');
    await row.click();
    await page.locator('#presence td', { hasText: 'carol' }).waitFor({ timeout: 5_000 });
    await page.locator('#history li[data-offset="6"]').waitFor({ timeout: 5_000 });
    expect(await page.locator('#history li').count()).toBe(20);
    await page.locator('#history-more').click();
    await page.locator('#history li[data-offset="1"]').waitFor({ timeout: 5_000 });
    expect(await page.locator('#history li').count()).toBe(25);
    expect(await page.locator('#history-more').isVisible()).toBe(false);
    await shoot(page, 'admin-channels-desktop');

    // Publish form: the publication reaches carol and shows in history.
    await page.locator('#tabs button[data-tab="publish"]').click();
    await page.locator('#pub-channel').fill(CHANNEL);
    await page.locator('#pub-data').fill('{"text": "from the admin"}');
    await page.locator('#publish-form button[type="submit"]').click();
    await page.locator('#pub-result', { hasText: 'offset 26' }).waitFor({ timeout: 5_000 });
    await waitFor('carol received the admin publication', () => got.pubs.some((p) => (p.data as { text?: string }).text === 'from the admin'));
    await page.locator('#tabs button[data-tab="channels"]').click();
    await page.locator(`#channel-list tr[data-channel="${CHANNEL}"]`).click();
    await page.locator('#history li[data-offset="26"]', { hasText: 'from the admin' }).waitFor({ timeout: 5_000 });

    // Connection inspector: it opens on every connection (the admin's own
    // and carol's); find carol, unsubscribe her, then disconnect her.
    await page.locator('#tabs button[data-tab="connections"]').click();
    await page.locator('#conn-note', { hasText: '2 connections' }).waitFor({ timeout: 5_000 });
    expect(await page.locator('#conn-list tr.pick').count()).toBe(2);
    await page.locator('#conn-user').fill('carol');
    await page.locator('#conn-form button[type="submit"]').click();
    // The list of both stays until the filtered answer replaces it.
    await page.locator('#conn-note', { hasText: /^1 connection\b/ }).waitFor({ timeout: 5_000 });
    const conn = page.locator('#conn-list tr.pick');
    expect(await conn.count()).toBe(1);
    await conn.first().click();
    await page.locator('#cd-user', { hasText: 'carol' }).waitFor({ timeout: 5_000 });
    await page.locator(`#cd-channels button[data-unsubscribe="${CHANNEL}"]`).click();
    await waitFor('carol unsubscribed by the admin', () => sub.state === 'unsubscribed');
    expect(carol.state).toBe('connected');
    await shoot(page, 'admin-connections-desktop');
    await page.locator('#cd-disconnect').click();
    await waitFor('carol disconnected by the admin', () => carol.state === 'disconnected');
    await page.locator('#conn-note', { hasText: '0 connections' }).waitFor({ timeout: 5_000 });

    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('fits a phone screen', async () => {
    const { page, errors } = await login(PHONE);
    await pageWait(page, 'a stats snapshot', () => ((window as unknown as AdminWindow).heraldAdmin?.snapshots ?? 0) >= 2, null);
    await shoot(page, 'admin-overview-phone');
    expect(errors).toEqual([]);
    await page.context().close();
  });
});

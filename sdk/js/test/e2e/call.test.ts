// Two people in the video call demo, each in a browser context of their
// own, with Chromium's fake camera and microphone: they see each other's
// moving picture, and chat and send a file over the data channel. The
// pages force the TURN relay (?relay=1): Chromium then sends every packet
// to the server's TURN port on loopback, so the test exercises the relay
// and sends nothing to the machine's other addresses (host candidates).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newClient, subscribed } from '../helpers/client.js';
import { HeraldServer } from '../helpers/server.js';
import { DESKTOP, PHONE, launch, pageWait, screenshot } from './browser.js';
import { type CallWindow, joinCall, openCall as openPage, videoPlays } from './callpage.js';

let server: HeraldServer;
let browser: Browser;

beforeAll(async () => {
  server = await HeraldServer.start({ env: { HERALD_DEMO_TICKER: '0' } });
  // A camera and microphone that exist, allowed without asking.
  browser = await launch(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

function openCall(name: string, room: string, viewport = DESKTOP): Promise<{ page: Page; errors: Error[] }> {
  return openPage(browser, server.url, name, room, viewport);
}

async function sees(page: Page, user: string): Promise<void> {
  await videoPlays(page, user, `${user}'s video to play`, () => callState(page, user));
}

/** What a page knows of the call and of user's tile, for a failure's message. */
function callState(page: Page, user: string): Promise<string> {
  return page.evaluate((u) => {
    const v = document.querySelector<HTMLVideoElement>(`.tile[data-user="${u}"] video`);
    const tile = v?.closest('.tile');
    const video = v && {
      state: tile?.getAttribute('data-state'),
      readyState: v.readyState,
      paused: v.paused,
      size: `${v.videoWidth}x${v.videoHeight}`,
      time: v.currentTime,
      frames: v.getVideoPlaybackQuality().totalVideoFrames,
      tracks: v.srcObject instanceof MediaStream ? v.srcObject.getTracks().map((t) => `${t.kind} ${t.readyState} muted=${t.muted}`) : null,
    };
    type Room = { peers: Array<{ id: string; polite: boolean; pc: RTCPeerConnection }> };
    const w = window as unknown as { demo?: { call?: unknown; peerRoom?: Room | null } };
    const peers = w.demo?.peerRoom?.peers.map((p) => ({
      id: p.id,
      polite: p.polite,
      signaling: p.pc.signalingState,
      ice: p.pc.iceConnectionState,
      gathering: p.pc.iceGatheringState,
      connection: p.pc.connectionState,
    }));
    return JSON.stringify({ call: w.demo?.call, peers, video, status: document.getElementById('call-status')?.textContent });
  }, user);
}

async function say(page: Page, text: string): Promise<void> {
  await page.locator('#call-text').fill(text);
  await page.locator('#call-send').click();
}

function messageFrom(page: Page, user: string) {
  return page.locator(`#call-messages .message[data-user="${user}"] .text`);
}

describe('video call demo', () => {
  it('two people see and hear each other, chat and send a file peer to peer', async () => {
    const room = `call${Date.now()}`;
    const alice = await openCall('alice', room);
    const bob = await openCall('bob', room, PHONE);
    await joinCall(alice.page);
    await joinCall(bob.page);

    await sees(alice.page, 'bob');
    await sees(bob.page, 'alice');
    for (const [p, other] of [[alice.page, 'bob'], [bob.page, 'alice']] as const) {
      const tracks = await p.evaluate((u) => {
        const v = document.querySelector<HTMLVideoElement>(`.tile[data-user="${u}"] video`)!;
        return (v.srcObject as MediaStream).getTracks().map((t) => t.kind).sort();
      }, other);
      expect(tracks).toEqual(['audio', 'video']);
    }

    // Chat, both ways, over the data channel.
    const hello = 'héllo bob — über den Datenkanal, 100 % peer to peer';
    await say(alice.page, hello);
    await messageFrom(bob.page, 'alice').first().waitFor({ timeout: 10_000 });
    expect(await messageFrom(bob.page, 'alice').allTextContents()).toEqual([hello]);
    await say(bob.page, 'hi alice');
    await messageFrom(alice.page, 'bob').first().waitFor({ timeout: 10_000 });
    expect(await messageFrom(alice.page, 'bob').allTextContents()).toEqual(['hi alice']);

    // A file of several chunks, the last one partial, arrives byte for byte.
    const bytes = randomBytes(100_000);
    await alice.page.locator('#file').setInputFiles({ name: 'notes.bin', mimeType: 'application/octet-stream', buffer: bytes });
    const link = bob.page.locator('#transfers .transfer[data-state="done"] a.download');
    await link.waitFor({ timeout: 10_000 });
    const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
    expect(download.suggestedFilename()).toBe('notes.bin');
    expect(readFileSync(await download.path()).equals(bytes)).toBe(true);
    await alice.page.locator('#transfers .transfer[data-state="done"]', { hasText: 'Sent notes.bin to bob' }).waitFor({ timeout: 5_000 });

    // Mute and camera off disable the local tracks, and the other side is told.
    await alice.page.locator('#mic').click();
    await alice.page.locator('#cam').click();
    const enabled = await alice.page.evaluate(() => {
      const local = (document.getElementById('local') as HTMLVideoElement).srcObject as MediaStream;
      return local.getTracks().map((t) => `${t.kind} ${t.enabled}`).sort();
    });
    expect(enabled).toEqual(['audio false', 'video false']);
    await bob.page.locator('.tile.cam-off[data-user="alice"] .flags', { hasText: 'muted' }).waitFor({ timeout: 5_000 });
    await alice.page.locator('#mic').click();
    await alice.page.locator('#cam').click();
    await bob.page.locator('.tile:not(.cam-off)[data-user="alice"]').waitFor({ timeout: 5_000 });

    for (const p of [alice.page, bob.page]) await p.evaluate(() => window.scrollTo(0, 0));
    await screenshot(browser, alice.page, 'call-desktop');
    await screenshot(browser, bob.page, 'call-phone');
    // Nothing sticks out sideways on a phone.
    expect(await bob.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(1);

    // Bob goes: alice's connection to him closes and his tile goes.
    await bob.page.context().close();
    await pageWait(alice.page, 'bob\'s tile to go', () => !document.querySelector('.tile[data-user="bob"]'), null);
    expect(await alice.page.locator('#call-status').textContent()).toBe('Waiting for others to join…');
    for (const p of [alice, bob]) expect(p.errors).toEqual([]);
    expect(await alice.page.evaluate(() => (window as unknown as CallWindow).demo!.call!.errors)).toEqual([]);
    await alice.page.context().close();
  });

  it('turns a fifth person away politely', async () => {
    const room = `full${Date.now()}`;
    // Four members that are not browsers: presence is what counts.
    for (let i = 0; i < 4; i++) {
      const c = newClient(server.url, 'websocket');
      c.connect();
      await subscribed(c.newSubscription(`call:${room}`));
    }
    const fifth = await openCall('eve', room, PHONE);
    await fifth.page.locator('#join').click();
    await fifth.page.locator('#call-status', { hasText: 'This room is full' }).waitFor({ timeout: 10_000 });
    const call = await fifth.page.evaluate(() => (window as unknown as CallWindow).demo!.call!);
    expect(call).toMatchObject({ joined: false, full: true });
    expect(await fifth.page.locator('.tile').count()).toBe(1);
    expect(fifth.errors).toEqual([]);
    await fifth.page.context().close();
  });
});

// Three people in the video call demo, each in a browser context of their
// own with Chromium's fake camera: a mesh of three peer connections, every
// one of them relayed by the server's TURN port (?relay=1), and each person
// sees both others' pictures move. call.test.ts covers two people in depth
// (chat, files, mute); this covers the mesh growing past one pair.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldServer } from '../helpers/server.js';
import { launch, pageWait } from './browser.js';
import { type CallWindow, joinCall, openCall, videoPlays } from './callpage.js';

let server: HeraldServer;
let browser: Browser;

beforeAll(async () => {
  server = await HeraldServer.start({ env: { HERALD_DEMO_TICKER: '0' } });
  browser = await launch(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

type Person = { name: string; page: Page; errors: Error[] };

async function enter(name: string, room: string): Promise<Person> {
  const { page, errors } = await openCall(browser, server.url, name, room);
  await joinCall(page);
  return { name, page, errors };
}

async function sees(p: Person, user: string): Promise<void> {
  await videoPlays(p.page, user, `${p.name} to see ${user}'s video play`, () => peers(p.page));
}

/** The page's peer connections, for a failure's message. */
function peers(page: Page): Promise<string> {
  return page.evaluate(() => {
    type Room = { peers: Array<{ id: string; polite: boolean; pc: RTCPeerConnection }> };
    const w = window as unknown as { demo?: { call?: unknown; peerRoom?: Room | null } };
    return JSON.stringify({
      call: w.demo?.call,
      peers: w.demo?.peerRoom?.peers.map((p) => ({ id: p.id, signaling: p.pc.signalingState, ice: p.pc.iceConnectionState, connection: p.pc.connectionState })),
      status: document.getElementById('call-status')?.textContent,
    });
  });
}

/** The local candidate type of each of the page's peer connections' selected pair. */
function localCandidateTypes(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    type Room = { peers: Array<{ pc: RTCPeerConnection }> };
    type Stat = { type: string; selectedCandidatePairId?: string; localCandidateId?: string; candidateType?: string };
    const room = (window as unknown as { demo: { peerRoom: Room } }).demo.peerRoom;
    const types: string[] = [];
    for (const { pc } of room.peers) {
      const stats = (await pc.getStats()) as unknown as Map<string, Stat>;
      for (const s of stats.values()) {
        if (s.type !== 'transport' || !s.selectedCandidatePairId) continue;
        const pair = stats.get(s.selectedCandidatePairId);
        types.push(stats.get(pair?.localCandidateId ?? '')?.candidateType ?? 'none');
      }
    }
    return types.sort();
  });
}

describe('video call demo, three people', () => {
  it('each sees both others\u2019 video, every connection relayed', async () => {
    const room = `three${Date.now()}`;
    const people: Person[] = [];
    // One after the other, as people arrive: each newcomer is introduced to
    // everyone already there.
    for (const name of ['alice', 'bob', 'carol']) people.push(await enter(name, room));

    for (const p of people) {
      for (const other of people) if (other !== p) await sees(p, other.name);
    }
    for (const p of people) {
      expect(await p.page.locator('.tile').count()).toBe(3);
      expect(await localCandidateTypes(p.page)).toEqual(['relay', 'relay']);
    }

    // Carol leaves: the two others keep seeing each other, and her tile goes.
    await people[2]!.page.context().close();
    for (const p of people.slice(0, 2)) {
      await pageWait(p.page, 'carol\u2019s tile to go', () => !document.querySelector('.tile[data-user="carol"]'), null);
    }
    await sees(people[0]!, 'bob');
    await sees(people[1]!, 'alice');
    for (const p of people) expect(p.errors).toEqual([]);
    for (const p of people.slice(0, 2)) {
      expect(await p.page.evaluate(() => (window as unknown as CallWindow).demo!.call!.errors)).toEqual([]);
      await p.page.context().close();
    }
  });
});

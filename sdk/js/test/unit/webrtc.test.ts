import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Client } from '../../src/client.js';
import { HeraldError } from '../../src/errors.js';
import { PeerRoom, type PeerRoomOptions } from '../../src/webrtc.js';
import { waitFor } from '../helpers/wait.js';
import { camera, FakeRTC, RoomServer, type FakePC } from './fakertc.js';

let server: RoomServer;
let rtc: FakeRTC;
let clients: Client[];

beforeEach(() => {
  server = new RoomServer();
  rtc = new FakeRTC();
  clients = [];
});

afterEach(() => {
  for (const c of clients) c.disconnect();
});

/** What a room told its application, in order. */
interface Log {
  events: string[];
  tracks: string[];
  messages: Array<{ from: string; data: unknown }>;
  states: string[];
  errors: Error[];
}

function member(user: string, extra: PeerRoomOptions = {}, channel = 'call:r') {
  const c = new Client({
    url: 'http://herald.test',
    transports: ['websocket'],
    transportImpls: { websocket: server.impl(user) },
    network: null,
    minReconnectDelay: 1,
    maxReconnectDelay: 5,
  });
  clients.push(c);
  const room = new PeerRoom(c, channel, { stream: camera(user), dataChannel: true, RTCPeerConnection: rtc.RTCPeerConnection, ...extra });
  const log: Log = { events: [], tracks: [], messages: [], states: [], errors: [] };
  room.on('peerjoined', (e) => log.events.push(`joined ${e.peer.id}`));
  room.on('peerleft', (e) => log.events.push(`left ${e.peer.id}`));
  room.on('channelopen', (e) => log.events.push(`open ${e.peer.id}`));
  room.on('track', (e) => log.tracks.push(`${e.peer.id} ${e.track.kind} ${e.track.id} in ${e.streams[0]?.id}`));
  room.on('message', (e) => log.messages.push({ from: e.peer.id, data: e.data }));
  room.on('peerstate', (e) => log.states.push(`${e.peer.id} ${e.state}`));
  room.on('error', (e) => log.errors.push(e.error));
  c.connect();
  return { c, room, log };
}

type Member = ReturnType<typeof member>;

function pcTo(m: Member, id: string): FakePC {
  const p = m.room.peers.find((x) => x.id === id);
  if (!p) throw new Error(`no peer ${id}`);
  return p.pc as FakePC;
}

async function connectedPair(a: Member, b: Member, aId: string, bId: string): Promise<void> {
  await waitFor(`${aId} and ${bId} connected with open channels`, () => {
    const pa = a.room.peers.find((p) => p.id === bId);
    const pb = b.room.peers.find((p) => p.id === aId);
    return pa?.pc.connectionState === 'connected' && pb?.pc.connectionState === 'connected' && pa.channel?.readyState === 'open' && pb.channel?.readyState === 'open';
  });
}

describe('PeerRoom', () => {
  it('connects two members: tracks both ways, one data channel each, text and binary messages', async () => {
    const alice = member('alice');
    await alice.room.join();
    const bob = member('bob');
    await bob.room.join();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');

    // The id that sorts first is polite, on both sides alike; the impolite
    // side offered, the polite one answered, and nobody rolled back.
    expect(alice.room.peers.map((p) => [p.id, p.polite])).toEqual([['bob-1', true]]);
    expect(bob.room.peers.map((p) => [p.id, p.polite])).toEqual([['alice-1', false]]);
    const [polite, impolite] = [pcTo(alice, 'bob-1'), pcTo(bob, 'alice-1')];
    expect([polite.offers, impolite.offers, polite.rollbacks, impolite.rollbacks]).toEqual([0, 1, 0, 0]);
    expect(alice.log.tracks).toEqual(['bob-1 audio bob-audio in bob-stream', 'bob-1 video bob-video in bob-stream']);
    expect(bob.log.tracks).toEqual(['alice-1 audio alice-audio in alice-stream', 'alice-1 video alice-video in alice-stream']);
    expect(alice.log.events).toEqual(['joined bob-1', 'open bob-1']);
    expect(bob.log.events).toEqual(['joined alice-1', 'open alice-1']);

    expect(alice.room.send('hello bob')).toBe(1);
    const bytes = new Uint8Array([1, 2, 250]).buffer;
    bob.room.peers[0]!.channel!.send(bytes);
    await waitFor('both messages', () => bob.log.messages.length === 1 && alice.log.messages.length === 1);
    expect(bob.log.messages).toEqual([{ from: 'alice-1', data: 'hello bob' }]);
    expect(alice.log.messages).toEqual([{ from: 'bob-1', data: bytes }]);
    expect(alice.room.peers[0]!.channel!.binaryType).toBe('arraybuffer');
    expect(alice.log.errors).toEqual([]);
    expect(bob.log.errors).toEqual([]);
  });

  it('resolves offers that cross: the polite side rolls back and answers, the impolite side ignores', async () => {
    // Signals held past the polite side's wait for an offer: both offer.
    server.holdSignals = true;
    const alice = member('alice');
    const bob = member('bob');
    await Promise.all([alice.room.join(), bob.room.join()]);
    await waitFor('an offer on each side', () => rtc.all.length === 2 && rtc.all.every((pc) => pc.signalingState === 'have-local-offer'));
    server.release();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');

    const polite = pcTo(alice, 'bob-1');
    const impolite = pcTo(bob, 'alice-1');
    expect(polite.rollbacks).toBe(1);
    expect(impolite.rollbacks).toBe(0);
    // Bob's offer is the one both sides went on with.
    expect(polite.remoteDescription?.type).toBe('offer');
    expect(impolite.remoteDescription?.type).toBe('answer');
    expect([polite.offers, impolite.offers]).toEqual([1, 1]);
    expect(alice.log.tracks).toHaveLength(2);
    expect(bob.log.tracks).toHaveLength(2);
    // The candidates of the ignored offer fail to apply, and nobody hears of it.
    expect(alice.log.errors).toEqual([]);
    expect(bob.log.errors).toEqual([]);
  });

  it('makes a mesh: one connection to each other member', async () => {
    const ms = [member('a'), member('b'), member('c')];
    for (const m of ms) await m.room.join();
    await connectedPair(ms[0]!, ms[1]!, 'a-1', 'b-1');
    await connectedPair(ms[0]!, ms[2]!, 'a-1', 'c-1');
    await connectedPair(ms[1]!, ms[2]!, 'b-1', 'c-1');
    expect(ms.map((m) => m.room.peers.map((p) => p.id).sort())).toEqual([
      ['b-1', 'c-1'],
      ['a-1', 'c-1'],
      ['a-1', 'b-1'],
    ]);
    expect(rtc.all).toHaveLength(6);
    expect(ms[0]!.room.send('to all')).toBe(2);
    await waitFor('b and c get it', () => ms[1]!.log.messages.length === 1 && ms[2]!.log.messages.length === 1);
  });

  it('closes the connection to a member that leaves, and a late signal from it opens nothing', async () => {
    const alice = member('alice');
    const bob = member('bob');
    await alice.room.join();
    await bob.room.join();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');
    const toBob = pcTo(alice, 'bob-1');
    const toAlice = pcTo(bob, 'alice-1');

    bob.room.leave();
    expect(toAlice.connectionState).toBe('closed');
    expect(bob.log.events.at(-1)).toBe('left alice-1');
    expect(bob.c.getSubscription('call:r')).toBeNull();
    await waitFor('alice to see bob leave', () => alice.log.events.includes('left bob-1'));
    expect(toBob.connectionState).toBe('closed');
    expect(alice.room.peers).toEqual([]);

    const made = rtc.all.length;
    const session = [...server.sessions].find((s) => s.id === 'alice-1')!;
    session.host.signal(session, 'call:r', { client: 'bob-1', user: 'bob' }, { candidate: null });
    expect(rtc.all).toHaveLength(made);
    expect(alice.log.events).toEqual(['joined bob-1', 'open bob-1', 'left bob-1']);
  });

  it('configures each connection with the server\'s ICE servers under the options\' configuration', async () => {
    const alice = member('alice', { stream: null, dataChannel: false, configuration: { iceTransportPolicy: 'relay' } });
    const bob = member('bob', { stream: null, dataChannel: false, configuration: { iceServers: [{ urls: 'stun:elsewhere' }] } });
    await alice.room.join();
    await bob.room.join();
    await waitFor('a connection on each side', () => alice.room.peers.length === 1 && bob.room.peers.length === 1);
    expect(pcTo(alice, 'bob-1').configuration).toEqual({
      iceServers: [{ urls: ['turn:127.0.0.1:3478?transport=udp'], username: '9:alice-1', credential: 'c' }],
      bundlePolicy: 'max-bundle',
      iceTransportPolicy: 'relay',
    });
    expect(pcTo(bob, 'alice-1').configuration).toEqual({ iceServers: [{ urls: 'stun:elsewhere' }], bundlePolicy: 'max-bundle' });
  });

  it('makes the polite side offer when the other side has nothing to send', async () => {
    const alice = member('alice', { dataChannel: false });
    const bob = member('bob', { stream: null, dataChannel: false });
    await alice.room.join();
    await bob.room.join();
    await waitFor('alice\'s tracks at bob', () => bob.log.tracks.length === 2);
    const polite = pcTo(alice, 'bob-1');
    await waitFor('connected', () => polite.connectionState === 'connected' && pcTo(bob, 'alice-1').connectionState === 'connected');
    expect([polite.offers, pcTo(bob, 'alice-1').offers]).toEqual([1, 0]);
    expect(alice.log.tracks).toEqual([]);
  });

  it('restarts ICE on a failed connection and negotiates again', async () => {
    const alice = member('alice');
    const bob = member('bob');
    await alice.room.join();
    await bob.room.join();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');
    const pc = pcTo(bob, 'alice-1');
    const offers = pc.offers;
    pc.fail();
    expect(pc.restarts).toBe(1);
    await waitFor('connected again', () => pc.connectionState === 'connected');
    expect(pc.offers).toBe(offers + 1);
    expect(bob.log.states.slice(-2)).toEqual(['alice-1 failed', 'alice-1 connected']);
    expect(bob.log.errors).toEqual([]);
    expect(alice.log.errors).toEqual([]);
  });

  it('after a reconnect, which brings a new client id, connects again under the new id', async () => {
    const alice = member('alice');
    const bob = member('bob');
    await alice.room.join();
    await bob.room.join();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');
    const old = pcTo(alice, 'bob-1');
    expect(server.iceServerCalls).toBe(2);

    [...server.sessions].find((s) => s.id === 'alice-1')!.drop();
    await waitFor('alice back as alice-2', () => alice.c.clientId === 'alice-2');
    await connectedPair(alice, bob, 'alice-2', 'bob-1');
    expect(old.connectionState).toBe('closed');
    expect(alice.log.events).toEqual(['joined bob-1', 'open bob-1', 'left bob-1', 'joined bob-1', 'open bob-1']);
    expect(bob.log.events).toEqual(['joined alice-1', 'open alice-1', 'left alice-1', 'joined alice-2', 'open alice-2']);
    // New credentials for the new id.
    expect(server.iceServerCalls).toBe(3);
    expect(pcTo(alice, 'bob-1').configuration.iceServers![0]!.username).toBe('9:alice-2');
    expect(alice.log.errors).toEqual([]);
    expect(bob.log.errors).toEqual([]);
  });

  it('after its subscription is made again, connects anew to those still there and not to those that left meanwhile', async () => {
    const [alice, bob, carol] = [member('alice'), member('bob'), member('carol')];
    for (const m of [alice, bob, carol]) await m.room.join();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');
    await connectedPair(alice, carol, 'alice-1', 'carol-1');
    await connectedPair(bob, carol, 'bob-1', 'carol-1');
    const old = pcTo(alice, 'bob-1');
    const [seenA, seenB] = [alice.log.events.length, bob.log.events.length];
    const session = [...server.sessions].find((s) => s.id === 'alice-1')!;
    session.suspend('call:r');
    // Out of the room, alice closes her side at once, as the others do.
    expect(old.connectionState).toBe('closed');
    expect(alice.room.peers).toEqual([]);
    await waitFor('bob and carol to see alice leave', () => bob.room.peers.length === 1 && carol.room.peers.length === 1);
    carol.room.leave();
    session.update();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');
    expect(pcTo(alice, 'bob-1')).not.toBe(old);
    expect(alice.room.peers.map((p) => p.id)).toEqual(['bob-1']);
    expect(alice.log.events.slice(seenA)).toEqual(['left bob-1', 'left carol-1', 'joined bob-1', 'open bob-1']);
    expect(bob.log.events.slice(seenB)).toEqual(['left alice-1', 'left carol-1', 'joined alice-1', 'open alice-1']);
    for (const m of [alice, bob, carol]) expect(m.log.errors).toEqual([]);
  });

  it('connects again to a member that leaves and comes back under the same client id, seen coming or not', async () => {
    const alice = member('alice');
    const bob = member('bob');
    await alice.room.join();
    await bob.room.join();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');
    bob.room.leave();
    await waitFor('alice to see bob leave', () => alice.room.peers.length === 0);
    await bob.room.join();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');
    expect(bob.c.clientId).toBe('bob-1');
    expect(alice.log.events).toEqual(['joined bob-1', 'open bob-1', 'left bob-1', 'joined bob-1', 'open bob-1']);

    // Bob leaves, and comes back while alice is out of the room: she
    // finds him in presence when she is back.
    bob.room.leave();
    await waitFor('alice to see bob leave again', () => alice.room.peers.length === 0);
    const session = [...server.sessions].find((s) => s.id === 'alice-1')!;
    session.suspend('call:r');
    await bob.room.join();
    session.update();
    await connectedPair(alice, bob, 'alice-1', 'bob-1');
  });

  it('drops a member that a presence list names but the server no longer has, at its first signal', async () => {
    server.phantoms = [{ client: 'a-ghost-1', user: 'ghost' }];
    const alice = member('alice');
    await alice.room.join();
    await waitFor('the ghost to go', () => alice.log.events.length === 2);
    expect(alice.log.events).toEqual(['joined a-ghost-1', 'left a-ghost-1']);
    expect(alice.log.errors).toEqual([]);
  });

  it('refuses to join without an RTCPeerConnection, and leaves a channel the server refuses', async () => {
    const none = member('alice', { RTCPeerConnection: undefined });
    await expect(none.room.join()).rejects.toThrow(/no RTCPeerConnection/);

    const refused = member('bob', {}, 'chat:not-a-room');
    const err = await refused.room.join().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeraldError);
    expect((err as HeraldError).code).toBe(103);
    expect(refused.c.getSubscription('chat:not-a-room')).toBeNull();
    expect(refused.room.subscription).toBeNull();
  });
});

// WebRTC signaling against the real server: directed signals between the
// members of a room and the embedded TURN server's credentials. Node has
// no RTCPeerConnection, so the peer connections themselves are left to the
// browser suite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '../../src/client.js';
import { HeraldError } from '../../src/errors.js';
import type { Subscription } from '../../src/subscription.js';
import type { SignalEvent, TransportName } from '../../src/types.js';
import { newClient, subscribed } from '../helpers/client.js';
import { HeraldServer } from '../helpers/server.js';
import { nextEvent, waitFor } from '../helpers/wait.js';

let srv: HeraldServer;
beforeAll(async () => {
  srv = await HeraldServer.start();
});
afterAll(async () => {
  await srv?.close();
});

/** A client of the room on transport, subscribed, and the signals it receives. */
async function memberOf(room: string, transport: TransportName = 'websocket'): Promise<{ c: Client; sub: Subscription; got: SignalEvent[] }> {
  const c = newClient(srv.url, transport);
  const sub = c.newSubscription(room);
  const got: SignalEvent[] = [];
  sub.on('signal', (e) => got.push(e));
  c.connect();
  await subscribed(sub);
  return { c, sub, got };
}

async function codeOf(p: Promise<unknown>): Promise<number> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HeraldError);
  return (err as HeraldError).code;
}

describe('WebRTC signaling against the real server', () => {
  it('carries a signal to one member, with who sent it, and the answer back', async () => {
    const a = await memberOf('call:pair');
    const b = await memberOf('call:pair');
    const third = await memberOf('call:pair');
    const offer = { description: { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' } };
    const got = nextEvent<SignalEvent>((l) => b.sub.on('signal', l), (l) => b.sub.off('signal', l), 'the offer');
    await a.c.signal('call:pair', b.c.clientId!, offer);
    expect(await got).toEqual({ channel: 'call:pair', from: { client: a.c.clientId, user: '' }, data: offer });

    const candidate = { candidate: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 } };
    await b.sub.signal(a.c.clientId!, candidate);
    await waitFor('the candidate', () => a.got.length === 1);
    expect(a.got[0]).toEqual({ channel: 'call:pair', from: { client: b.c.clientId, user: '' }, data: candidate });
    // Nobody else heard either.
    expect(third.got).toEqual([]);
  });

  it('delivers one sender\'s signals in the order sent', async () => {
    const a = await memberOf('call:order');
    const b = await memberOf('call:order');
    const n = 50;
    await Promise.all(Array.from({ length: n }, (_, i) => a.sub.signal(b.c.clientId!, { i })));
    await waitFor(`${n} signals`, () => b.got.length === n);
    expect(b.got.map((e) => (e.data as { i: number }).i)).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('refuses a recipient outside the room, a sender outside it, oneself, and oversized data', async () => {
    const a = await memberOf('call:refusals');
    const outsider = await memberOf('call:elsewhere');
    expect(await codeOf(a.c.signal('call:refusals', outsider.c.clientId!, 1))).toBe(117);
    expect(await codeOf(outsider.c.signal('call:refusals', a.c.clientId!, 1))).toBe(110);
    expect(await codeOf(a.c.signal('call:refusals', a.c.clientId!, 1))).toBe(107);
    expect(await codeOf(a.c.signal('call:refusals', outsider.c.clientId!, 'x'.repeat(70_000)))).toBe(114);
    // The recipient left: its signals are refused from then on.
    const b = await memberOf('call:refusals');
    const id = b.c.clientId!;
    await a.sub.signal(id, 'before');
    b.sub.unsubscribe();
    // The unsubscribe goes over b's connection: wait for the server to take it.
    const refusal = () => a.sub.signal(id, 'after').then(
      () => 0,
      (e: unknown) => (e instanceof HeraldError ? e.code : -1),
    );
    await expect.poll(refusal, { timeout: 5000, interval: 20 }).toBe(117);
    expect(a.c.state).toBe('connected');
  });

  it('hands out the embedded TURN server with credentials for this client', async () => {
    const { c } = await memberOf('call:ice');
    const servers = await c.iceServers();
    expect(servers).toHaveLength(1);
    const urls = servers[0]!.urls as string[];
    // The server listens on a port of its own choosing (--turn-addr
    // 127.0.0.1:0): the URLs name the real one.
    const port = /^stun:127\.0\.0\.1:(\d+)$/.exec(urls[0]!)?.[1];
    expect(Number(port)).toBeGreaterThan(0);
    expect(urls).toEqual([`stun:127.0.0.1:${port}`, `turn:127.0.0.1:${port}?transport=udp`, `turn:127.0.0.1:${port}?transport=tcp`]);
    const [expiry, user] = servers[0]!.username!.split(':');
    expect(user).toBe(`anonymous-${c.clientId}`);
    expect(Number(expiry) * 1000).toBeGreaterThan(Date.now());
    expect(servers[0]!.credential).toMatch(/^[A-Za-z0-9+/]+=*$/);
  });

  it('reaches a member on SSE, which cannot signal itself', async () => {
    const ws = await memberOf('call:mixed');
    const sse = await memberOf('call:mixed', 'sse');
    const { clients } = await ws.sub.presence();
    const sseId = Object.keys(clients).find((id) => id !== ws.c.clientId)!;
    expect(sseId).toBeDefined();
    await ws.sub.signal(sseId, { description: { type: 'offer', sdp: 'v=0' } });
    await waitFor('the signal over SSE', () => sse.got.length === 1);
    expect(sse.got[0]).toEqual({ channel: 'call:mixed', from: { client: ws.c.clientId, user: '' }, data: { description: { type: 'offer', sdp: 'v=0' } } });
    await expect(sse.sub.signal(ws.c.clientId!, 1)).rejects.toThrow(/needs a WebSocket connection; the client is on sse/);
  });
});

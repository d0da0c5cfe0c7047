import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Client } from '../../src/client.js';
import { ErrorCodes, HeraldError } from '../../src/errors.js';
import type { SignalEvent } from '../../src/types.js';
import { FakeNet, tick } from './fakes.js';

let net: FakeNet;

beforeEach(() => {
  vi.useFakeTimers();
  net = new FakeNet();
});
afterEach(() => {
  vi.useRealTimers();
});

async function connected() {
  const c = new Client({ url: 'http://herald.test', transportImpls: net.impls(), network: null, upgradeInterval: 0 });
  const sub = c.newSubscription('call:a');
  const signals: SignalEvent[] = [];
  sub.on('signal', (e) => signals.push(e));
  sub.subscribe();
  c.connect();
  await tick();
  return { c, sub, signals, t: net.last };
}

const alice = { client: 'alice-1', user: 'alice' };

describe('signal', () => {
  it('sends the signal command on the connection, from the client or the subscription', async () => {
    const { c, sub } = await connected();
    await expect(c.signal('call:a', 'bob-1', { description: { type: 'offer', sdp: 'v=0' } })).resolves.toBeUndefined();
    await sub.signal('bob-1', { candidate: null });
    expect(net.calls).toEqual([
      { method: 'signal', params: { channel: 'call:a', to: 'bob-1', data: { description: { type: 'offer', sdp: 'v=0' } } }, via: 'websocket' },
      { method: 'signal', params: { channel: 'call:a', to: 'bob-1', data: { candidate: null } }, via: 'websocket' },
    ]);
  });

  it('rejects with the server\'s refusal and its code', async () => {
    const { c } = await connected();
    net.answer = () => Promise.reject(new HeraldError(ErrorCodes.NoRecipient, 'recipient not found'));
    const err = await c.signal('call:a', 'gone-1', 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeraldError);
    expect((err as HeraldError).code).toBe(117);
  });

  it('rejects at once on a transport whose commands go over HTTP, sending nothing', async () => {
    const fetched: string[] = [];
    const impls = net.impls();
    const c = new Client({
      url: 'http://herald.test',
      transports: ['sse'],
      transportImpls: { sse: { ...impls.sse, httpCommands: true } },
      fetch: async (url) => {
        fetched.push(url);
        return { ok: true, status: 200, text: async () => '{}' };
      },
      network: null,
    });
    c.connect();
    await tick();
    await expect(c.signal('call:a', 'bob-1', 1)).rejects.toThrow(/signal needs a WebSocket connection; the client is on sse/);
    await expect(c.iceServers()).rejects.toThrow(/ice_servers needs a WebSocket connection/);
    expect(fetched).toEqual([]);
    expect(net.calls).toEqual([]);
  });

  it('reaches the subscription of its room, also before the subscribe reply, and nothing else', async () => {
    const { c, sub, signals, t } = await connected();
    const other: SignalEvent[] = [];
    c.on('signal', (e) => other.push(e));
    t.host.signal(t, 'call:a', alice, { candidate: null });
    t.host.signal(t, 'call:b', alice, 'no such room here');
    expect(signals).toEqual([{ channel: 'call:a', from: alice, data: { candidate: null } }]);

    // The server adds a member to presence before it replies to the
    // subscribe, so a signal can come first.
    net.behavior.websocket = 'hang';
    t.drop();
    await tick(1000);
    const next = net.last;
    next.host.connected(next, {});
    expect(c.state).toBe('connected');
    expect(sub.state).toBe('subscribing');
    next.host.signal(next, 'call:a', alice, 2);
    t.host.signal(t, 'call:a', alice, 'from the session that ended');
    expect(signals.map((s) => s.data)).toEqual([{ candidate: null }, 2]);

    sub.unsubscribe();
    next.host.signal(next, 'call:a', alice, 3);
    expect(signals).toHaveLength(2);
    expect(other).toEqual([]);
  });

  it('of a server-side subscription comes on the client', async () => {
    const { c, t } = await connected();
    const got: SignalEvent[] = [];
    c.on('signal', (e) => got.push(e));
    t.host.serverSubscribed(t, 'call:mine', { position: null, recoverable: false, wasRecovering: false, recovered: false });
    t.host.signal(t, 'call:mine', alice, 'hi');
    expect(got).toEqual([{ channel: 'call:mine', from: alice, data: 'hi' }]);
  });
});

describe('iceServers', () => {
  it('returns the servers in RTCIceServer form', async () => {
    const { c } = await connected();
    net.answer = async () => ({
      ice_servers: [{ urls: ['stun:127.0.0.1:3478', 'turn:127.0.0.1:3478?transport=udp'], username: '1700000000:alice', credential: 'c2VjcmV0' }, { urls: 'stun:stun.example' }],
      ttl: 3600,
    });
    expect(await c.iceServers()).toEqual([
      { urls: ['stun:127.0.0.1:3478', 'turn:127.0.0.1:3478?transport=udp'], username: '1700000000:alice', credential: 'c2VjcmV0' },
      { urls: 'stun:stun.example' },
    ]);
    expect(net.calls.at(-1)).toEqual({ method: 'ice_servers', params: {}, via: 'websocket' });
    net.answer = async () => ({ ice_servers: [] });
    expect(await c.iceServers()).toEqual([]);
  });
});

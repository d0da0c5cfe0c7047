import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Client, type ClientOptions } from '../../src/client.js';
import type { ClientState, TransportEvent } from '../../src/types.js';
import { FakeNet, tick } from './fakes.js';

let net: FakeNet;

function client(extra: Partial<ClientOptions> = {}): { c: Client; states: ClientState[]; transports: TransportEvent[] } {
  const c = new Client({
    url: 'http://herald.test',
    transportImpls: net.impls(),
    network: null,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    transportTimeout: 500,
    upgradeInterval: 0,
    // The top of every jitter range, so delays are predictable.
    random: () => 0.999999,
    ...extra,
  });
  const states: ClientState[] = [];
  const transports: TransportEvent[] = [];
  c.on('state', (e) => states.push(e.newState));
  c.on('transport', (e) => transports.push(e));
  return { c, states, transports };
}

beforeEach(() => {
  vi.useFakeTimers();
  net = new FakeNet();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('transport fallback', () => {
  it('tries websocket, sse, long polling, short polling in order, at once', async () => {
    net.behavior = { websocket: 'fail', sse: 'fail', longpoll: 'fail', shortpoll: 'ok' };
    const { c, transports } = client();
    const errors: string[] = [];
    c.on('error', (e) => errors.push(`${e.type}:${e.transport}`));
    c.connect();
    await tick(0);
    expect(net.opened).toEqual(['websocket', 'sse', 'longpoll', 'shortpoll']);
    expect(c.state).toBe('connected');
    expect(c.transport).toBe('shortpoll');
    expect(transports).toEqual([{ transport: 'shortpoll', previous: null, reason: 'initial' }]);
    expect(errors).toEqual(['transport:websocket', 'transport:sse', 'transport:longpoll']);
  });

  it('follows the configured order and skips unavailable transports', async () => {
    net.behavior.sse = 'fail';
    const impls = net.impls();
    const c = new Client({
      url: 'http://herald.test',
      transports: ['sse', 'shortpoll', 'websocket'],
      transportImpls: { sse: impls.sse, shortpoll: impls.shortpoll, websocket: impls.websocket },
      network: null,
      WebSocket: null,
      EventSource: null,
      fetch: undefined,
    });
    expect(c.transports).toEqual(['sse', 'shortpoll', 'websocket']);
    c.connect();
    await tick(0);
    expect(net.opened).toEqual(['sse', 'shortpoll']);
    expect(c.transport).toBe('shortpoll');
  });

  it('waits a backoff delay after every transport failed, then starts over from the best', async () => {
    net.behavior = { websocket: 'fail', sse: 'fail', longpoll: 'fail', shortpoll: 'fail' };
    const { c } = client();
    c.connect();
    await tick(0);
    expect(net.opened).toEqual(['websocket', 'sse', 'longpoll', 'shortpoll']);
    await tick(99);
    expect(net.opened).toHaveLength(4);
    await tick(1);
    expect(net.opened).toHaveLength(8);
    expect(net.opened.slice(4)).toEqual(['websocket', 'sse', 'longpoll', 'shortpoll']);
    // The next round waits twice as long (the ceiling doubles).
    await tick(199);
    expect(net.opened).toHaveLength(8);
    await tick(1);
    expect(net.opened).toHaveLength(12);
    expect(c.state).toBe('connecting');
  });

  it('takes a transport that does not connect within transportTimeout as failed', async () => {
    net.behavior.websocket = 'hang';
    const { c, transports } = client();
    c.connect();
    await tick(499);
    expect(net.opened).toEqual(['websocket']);
    await tick(1);
    expect(net.sessions[0]!.closed).toBe(true);
    expect(net.opened).toEqual(['websocket', 'sse']);
    expect(c.transport).toBe('sse');
    expect(transports[0]).toMatchObject({ transport: 'sse', reason: 'initial' });
  });

  it('reconnects on the same transport after a drop, with backoff', async () => {
    const { c, states } = client();
    c.connect();
    await tick(0);
    expect(c.transport).toBe('websocket');
    net.last.drop({ reason: 'network', code: 4000 });
    expect(c.state).toBe('connecting');
    await tick(100);
    expect(net.opened).toEqual(['websocket', 'websocket']);
    expect(c.state).toBe('connected');
    expect(states).toEqual(['connecting', 'connected', 'connecting', 'connected']);
  });

  it('gives a transport that worked before three tries before falling back', async () => {
    const { c, transports } = client();
    c.connect();
    await tick(0);
    net.behavior.websocket = 'fail';
    net.last.drop();
    await tick(100 + 200 + 400);
    expect(net.opened).toEqual(['websocket', 'websocket', 'websocket', 'websocket', 'sse']);
    expect(c.transport).toBe('sse');
    expect(transports.map((t) => `${t.transport}:${t.reason}`)).toEqual(['websocket:initial', 'sse:fallback']);
  });

  it('counts a session that connected without working as a failure, and forgets failures after one that worked', async () => {
    const { c, transports } = client();
    c.connect();
    await tick(0);
    /** Ends the current session for r and waits (in fake time) for the next one to connect. */
    const endAndReconnect = async (r: { reason: string; transportFailure?: boolean; unproven?: boolean }) => {
      const n = net.sessions.length;
      net.last.drop(r);
      for (let ms = 0; ms < 5_000 && !(net.sessions.length > n && c.state === 'connected'); ms += 10) await tick(10);
      expect(c.state).toBe('connected');
    };
    // A session that worked proves the transport; a failure after it
    // connected is the network's and does not count.
    await endAndReconnect({ reason: 'network' });
    await endAndReconnect({ reason: 'blip', transportFailure: true });
    // Sessions that connected without showing the transport works (as a
    // long poll cut by a proxy does) count: three in a row make the client
    // fall back from a proven transport.
    await endAndReconnect({ reason: 'cut', transportFailure: true, unproven: true });
    await endAndReconnect({ reason: 'cut', transportFailure: true, unproven: true });
    expect(c.transport).toBe('websocket');
    await endAndReconnect({ reason: 'cut', transportFailure: true, unproven: true });
    expect(c.transport).toBe('sse');
    expect(net.opened).toEqual(['websocket', 'websocket', 'websocket', 'websocket', 'websocket', 'sse']);
    expect(transports.map((t) => `${t.transport}:${t.reason}`)).toEqual(['websocket:initial', 'sse:fallback']);
  });

  it('falls back at once from a transport whose only session connected without working', async () => {
    const { c } = client();
    c.connect();
    await tick(0);
    net.last.drop({ reason: 'cut', transportFailure: true, unproven: true });
    for (let ms = 0; ms < 5_000 && !(c.state === 'connected' && c.transport === 'sse'); ms += 10) await tick(10);
    expect(c.transport).toBe('sse');
    expect(net.opened).toEqual(['websocket', 'sse']);
  });

  it('does not fall back when the server answered (no transport failure)', async () => {
    const { c } = client();
    c.connect();
    await tick(0);
    net.last.drop({ reason: 'internal error', code: 100 });
    await tick(100);
    expect(net.opened).toEqual(['websocket', 'websocket']);
  });

  it('stops for good on a permanent end', async () => {
    const { c } = client();
    const disconnected: number[] = [];
    c.on('disconnected', (e) => disconnected.push(e.code ?? -1));
    c.connect();
    await tick(0);
    net.last.drop({ reason: 'forced disconnect', code: 4504, permanent: true });
    expect(c.state).toBe('disconnected');
    expect(c.transport).toBeNull();
    await tick(60_000);
    expect(net.opened).toEqual(['websocket']);
    expect(disconnected).toEqual([4504]);
  });
});

describe('transport upgrade', () => {
  it('moves back to a better transport once its probe succeeds, staying connected', async () => {
    net.behavior.websocket = 'fail';
    net.probe.websocket = false;
    const { c, states, transports } = client({ upgradeInterval: 1000 });
    const sub = c.newSubscription('chat:a');
    const subscribed: boolean[] = [];
    sub.on('subscribed', (e) => subscribed.push(e.recovered));
    sub.subscribe();
    c.connect();
    await tick(0);
    expect(c.transport).toBe('sse');
    expect(sub.state).toBe('subscribed');
    await tick(1000);
    expect(net.probes).toEqual(['websocket']);
    expect(c.transport).toBe('sse'); // probe failed: stay
    net.behavior.websocket = 'ok';
    net.probe.websocket = true;
    await tick(1000);
    expect(net.probes).toEqual(['websocket', 'websocket']);
    expect(c.transport).toBe('websocket');
    expect(transports.map((t) => `${t.transport}:${t.reason}`)).toEqual(['sse:initial', 'websocket:upgrade']);
    // The switch is seamless: no connecting state, no second subscribed event.
    expect(states).toEqual(['connecting', 'connected']);
    expect(sub.state).toBe('subscribed');
    expect(subscribed).toEqual([false]);
    // On the best transport there is nothing to upgrade to.
    await tick(5000);
    expect(net.probes).toHaveLength(2);
  });

  it('goes back at once to the transport that worked when the upgrade fails', async () => {
    net.behavior.websocket = 'fail';
    const { c, states } = client({ upgradeInterval: 1000 });
    c.connect();
    await tick(0);
    expect(c.transport).toBe('sse');
    await tick(1000);
    expect(net.opened).toEqual(['websocket', 'sse', 'websocket', 'sse']);
    expect(c.transport).toBe('sse');
    expect(states).toEqual(['connecting', 'connected']);
  });
});

describe('setTransport', () => {
  it('switches now, and neither falls back nor upgrades while forced', async () => {
    const { c, transports } = client({ upgradeInterval: 1000 });
    c.connect();
    await tick(0);
    c.setTransport('longpoll');
    expect(c.forcedTransport).toBe('longpoll');
    await tick(0);
    expect(c.transport).toBe('longpoll');
    expect(transports.at(-1)).toEqual({ transport: 'longpoll', previous: 'websocket', reason: 'forced' });
    net.behavior.longpoll = 'fail';
    net.last.drop();
    await tick(100 + 200 + 400 + 800);
    expect(net.opened.slice(2).every((n) => n === 'longpoll')).toBe(true);
    expect(net.probes).toEqual([]);
    // Automatic again: long polling worked before, so it gets three tries
    // (one backoff delay of at most 1 s each) before the fallback.
    c.setTransport(null);
    for (let ms = 0; ms < 3000 && c.transport !== 'shortpoll'; ms += 10) await tick(10);
    expect(c.transport).toBe('shortpoll');
    expect(net.opened.filter((n) => n === 'longpoll').length).toBeGreaterThanOrEqual(4);
    // Then the upgrade finds websocket working again.
    await tick(1000);
    expect(c.transport).toBe('websocket');
  });

  it('commands go through the session in use', async () => {
    const { c } = client();
    c.connect();
    await tick(0);
    const r = (await c.presenceStats('chat:a')) as unknown;
    expect(r).toEqual({ numClients: 0, numUsers: 0 });
  });
});

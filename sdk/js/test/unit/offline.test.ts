import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Client } from '../../src/client.js';
import { FakeNet, FakeNetwork, tick } from './fakes.js';

let net: FakeNet;
let network: FakeNetwork;

function client(): Client {
  return new Client({
    url: 'http://herald.test',
    transportImpls: net.impls(),
    network,
    minReconnectDelay: 100,
    maxReconnectDelay: 1000,
    random: () => 0.999999,
  });
}

beforeEach(() => {
  vi.useFakeTimers();
  net = new FakeNet();
  network = new FakeNetwork();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('offline pause', () => {
  it('does not try to connect while offline, and connects at once when online', async () => {
    network.onLine = false;
    const c = client();
    c.connect();
    await tick(60_000);
    expect(net.opened).toEqual([]);
    expect(c.state).toBe('connecting');
    network.set(true);
    await tick(0);
    expect(net.opened).toEqual(['websocket']);
    expect(c.state).toBe('connected');
  });

  it('drops the session when the browser goes offline and resumes subscriptions when online', async () => {
    const c = client();
    const sub = c.newSubscription('chat:a');
    const subscribed: Array<[boolean, boolean]> = [];
    sub.on('subscribed', (e) => subscribed.push([e.wasRecovering, e.recovered]));
    sub.subscribe();
    c.connect();
    await tick(0);
    expect(sub.state).toBe('subscribed');
    const reasons: string[] = [];
    c.on('connecting', (e) => reasons.push(e.reason));
    network.set(false);
    expect(net.last.closed).toBe(true);
    expect(c.state).toBe('connecting');
    expect(sub.state).toBe('subscribing');
    expect(reasons).toEqual(['offline']);
    // Nothing happens while offline, however long.
    await tick(120_000);
    expect(net.opened).toEqual(['websocket']);
    network.set(true);
    await tick(0);
    expect(net.opened).toEqual(['websocket', 'websocket']);
    expect(c.state).toBe('connected');
    expect(sub.state).toBe('subscribed');
    // The second subscribe resumed from the position of the first.
    expect(subscribed).toEqual([
      [false, false],
      [true, true],
    ]);
  });

  it('stops listening to the network on disconnect', () => {
    const c = client();
    c.connect();
    expect(network.listening).toBe(2);
    c.disconnect();
    expect(network.listening).toBe(0);
    expect(c.state).toBe('disconnected');
  });
});

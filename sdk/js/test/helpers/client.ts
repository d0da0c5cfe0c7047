// Clients for integration tests: the SDK with npm "ws" and "eventsource" as
// its WebSocket and EventSource, short delays, and cleanup after each test.
import { EventSource } from 'eventsource';
import { afterEach } from 'vitest';
import WebSocket from 'ws';
import { Client, type ClientOptions } from '../../src/client.js';
import type { Subscription } from '../../src/subscription.js';
import type { Publication, SubscribedEvent, TransportName } from '../../src/types.js';
import { waitFor } from './wait.js';

const clients = new Set<Client>();

afterEach(() => {
  for (const c of clients) c.disconnect();
  clients.clear();
});

/** A client of url on the given transports (one, or an order), disconnected after the test. */
export function newClient(url: string, transports: TransportName | TransportName[], extra: Partial<ClientOptions> = {}): Client {
  const c = new Client({
    url,
    transports: Array.isArray(transports) ? transports : [transports],
    WebSocket,
    EventSource,
    fetch: globalThis.fetch,
    network: null,
    minReconnectDelay: 5,
    maxReconnectDelay: 100,
    pollTimeout: 2000,
    pollInterval: 10,
    transportTimeout: 3000,
    upgradeInterval: 0,
    ...extra,
  });
  clients.add(c);
  return c;
}

/** What a subscription received, in order. */
export interface Recording {
  pubs: Publication[];
  subscribed: SubscribedEvent[];
  joins: number;
  leaves: number;
  /** The integer data.n of every publication, in order of arrival. */
  readonly ns: number[];
}

export function record(sub: Subscription): Recording {
  const r: Recording = {
    pubs: [],
    subscribed: [],
    joins: 0,
    leaves: 0,
    get ns() {
      return this.pubs.map((p) => (p.data as { n: number }).n);
    },
  };
  sub.on('publication', (p) => r.pubs.push(p));
  sub.on('subscribed', (e) => r.subscribed.push(e));
  sub.on('join', () => r.joins++);
  sub.on('leave', () => r.leaves++);
  return r;
}

/** Subscribes and waits for the subscription to be confirmed. */
export async function subscribed(sub: Subscription, timeout = 10_000): Promise<void> {
  sub.subscribe();
  await waitFor(`${sub.channel} subscribed`, () => sub.state === 'subscribed', timeout);
}

/** 1, 2, …, n. */
export function seq(n: number, from = 1): number[] {
  return Array.from({ length: n }, (_, i) => i + from);
}

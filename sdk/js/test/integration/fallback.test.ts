// Fallback between real transports against the real server: WebSocket
// implementations that fail the way blocked WebSockets do, EventSources
// that fail, an upgrade back, and transports forced at run time.
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ClientOptions } from '../../src/client.js';
import type { TransportEvent } from '../../src/types.js';
import { newClient, record, seq, subscribed } from '../helpers/client.js';
import { HeraldServer } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';

type WSCtor = NonNullable<ClientOptions['WebSocket']>;
type ESCtor = NonNullable<ClientOptions['EventSource']>;

/** A WebSocket whose handshake fails, as one a proxy refuses does: error, then close 1006. */
class RefusedWebSocket {
  static created = 0;
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(_url: string) {
    RefusedWebSocket.created++;
    setTimeout(() => {
      this.readyState = 3;
      this.onerror?.({ type: 'error' });
      this.onclose?.({ code: 1006, reason: '' });
    }, 1);
  }
  send(): void {
    throw new Error('not open');
  }
  close(): void {}
}

/** A WebSocket that never opens nor fails: a proxy that holds the handshake. */
class HangingWebSocket {
  readyState = 0;
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;
  closed = false;
  send(): void {}
  close(): void {
    this.closed = true;
  }
}

/** A WebSocket whose constructor throws, as a blocked one can. */
class ThrowingWebSocket {
  constructor() {
    throw new Error('WebSocket is blocked');
  }
}

/** An EventSource that fails to connect, like one whose stream a proxy refuses. */
class FailingEventSource {
  readyState = 0;
  onopen = null;
  onmessage = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(_url: string) {
    setTimeout(() => {
      this.readyState = 2;
      this.onerror?.({ type: 'error' });
    }, 1);
  }
  addEventListener(): void {}
  close(): void {}
}

/** The npm "ws" WebSocket, refused while `blocked` is set. */
function switchableWebSocket(state: { blocked: boolean }): WSCtor {
  return function (url: string) {
    if (state.blocked) return new RefusedWebSocket(url);
    return new WebSocket(url);
  } as unknown as WSCtor;
}

/** The npm "eventsource" EventSource, failing while `blocked` is set; counts the real streams opened. */
function switchableEventSource(state: { blocked: boolean; opened: number }): ESCtor {
  return function (url: string, init?: { withCredentials?: boolean }) {
    if (state.blocked) return new FailingEventSource(url);
    state.opened++;
    return new EventSource(url, init);
  } as unknown as ESCtor;
}

describe('fallback against the real server', () => {
  let srv: HeraldServer;
  beforeAll(async () => {
    srv = await HeraldServer.start();
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('falls back from a refused WebSocket to SSE, and works there', async () => {
    const c = newClient(srv.url, ['websocket', 'sse', 'longpoll', 'shortpoll'], {
      WebSocket: RefusedWebSocket as unknown as WSCtor,
    });
    const transports: TransportEvent[] = [];
    const errors: string[] = [];
    c.on('transport', (e) => transports.push(e));
    c.on('error', (e) => errors.push(`${e.type}:${e.transport}`));
    const sub = c.newSubscription('fb:refused');
    const rec = record(sub);
    c.connect();
    await subscribed(sub);
    expect(c.transport).toBe('sse');
    expect(transports).toEqual([{ transport: 'sse', previous: null, reason: 'initial' }]);
    expect(errors).toEqual(['transport:websocket']);
    await sub.publish({ n: 1 });
    await srv.publish('fb:refused', { n: 2 });
    await waitFor('2 publications', () => rec.pubs.length >= 2);
    expect(rec.ns).toEqual([1, 2]);
  });

  it('falls back when the WebSocket constructor throws', async () => {
    const c = newClient(srv.url, ['websocket', 'sse'], { WebSocket: ThrowingWebSocket as unknown as WSCtor });
    const sub = c.newSubscription('fb:throws');
    c.connect();
    await subscribed(sub);
    expect(c.transport).toBe('sse');
  });

  it('falls back when the WebSocket never opens within transportTimeout', async () => {
    let made: HangingWebSocket | null = null;
    const WS = function () {
      made = new HangingWebSocket();
      return made;
    } as unknown as WSCtor;
    const c = newClient(srv.url, ['websocket', 'sse'], { WebSocket: WS, transportTimeout: 300 });
    const sub = c.newSubscription('fb:hangs');
    const start = Date.now();
    c.connect();
    await subscribed(sub);
    expect(c.transport).toBe('sse');
    expect(Date.now() - start).toBeGreaterThanOrEqual(300);
    expect(made!.closed).toBe(true);
  });

  it('falls back past a failing SSE to long polling', async () => {
    const c = newClient(srv.url, ['websocket', 'sse', 'longpoll'], {
      WebSocket: RefusedWebSocket as unknown as WSCtor,
      EventSource: FailingEventSource as unknown as ESCtor,
    });
    const sub = c.newSubscription('fb:poll');
    const rec = record(sub);
    c.connect();
    await subscribed(sub);
    expect(c.transport).toBe('longpoll');
    await srv.publish('fb:poll', { n: 1 });
    await waitFor('the publication', () => rec.pubs.length >= 1);
    // Sending works there too: the client publishes over HTTP, and the
    // server's history has it where the client was told it is.
    const sent = await sub.publish({ n: 2 });
    await waitFor('its own publication', () => rec.pubs.length >= 2);
    expect(rec.ns).toEqual([1, 2]);
    expect(rec.pubs[1]!.offset).toBe(sent.offset);
    const history = await srv.api<{ publications: { offset: number; data: { n: number } }[] }>('history', { channel: 'fb:poll' });
    expect(history.publications.map((p) => [p.offset, p.data.n])).toEqual([
      [rec.pubs[0]!.offset, 1],
      [sent.offset, 2],
    ]);
  });

  it('upgrades back to WebSocket once it works, losing and repeating nothing', async () => {
    const state = { blocked: true };
    const c = newClient(srv.url, ['websocket', 'sse', 'longpoll', 'shortpoll'], {
      WebSocket: switchableWebSocket(state),
      upgradeInterval: 200,
    });
    const transports: TransportEvent[] = [];
    c.on('transport', (e) => transports.push(e));
    const states: string[] = [];
    c.on('state', (e) => states.push(e.newState));
    const sub = c.newSubscription('fb:upgrade');
    const rec = record(sub);
    c.connect();
    await subscribed(sub);
    expect(c.transport).toBe('sse');
    for (const n of seq(10)) await srv.publish('fb:upgrade', { n });
    state.blocked = false;
    await waitFor('the upgrade', () => c.transport === 'websocket' && c.state === 'connected' && sub.state === 'subscribed');
    for (const n of seq(10, 11)) await srv.publish('fb:upgrade', { n });
    await waitFor('20 publications', () => rec.pubs.length >= 20);
    expect(rec.ns).toEqual(seq(20));
    expect(transports.map((t) => `${t.transport}:${t.reason}`)).toEqual(['sse:initial', 'websocket:upgrade']);
    // Seamless: no reconnecting state, no second subscribed event.
    expect(states).toEqual(['connecting', 'connected']);
    expect(rec.subscribed).toHaveLength(1);
  });

  it('falls back from long polling to short polling when every long poll fails, works there both ways, and upgrades back once long polls get through', async () => {
    // A proxy that cuts every request it would have to hold: short polls
    // (and the first poll of a session, which answers at once) pass, long
    // polls never get an answer.
    const proxy = { cutting: true, cut: 0 };
    const fetchCuttingLongPolls = ((input: string | URL, init?: RequestInit) => {
      const url = new URL(String(input));
      if (proxy.cutting && url.pathname === '/poll' && Number(url.searchParams.get('timeout') ?? '0') > 0) {
        proxy.cut++;
        return Promise.reject(new TypeError('fetch failed: connection reset by the proxy'));
      }
      return fetch(input, init);
    }) as typeof fetch;
    const c = newClient(srv.url, ['longpoll', 'shortpoll'], { fetch: fetchCuttingLongPolls, upgradeInterval: 100 });
    const transports: TransportEvent[] = [];
    c.on('transport', (e) => transports.push(e));
    const sub = c.newSubscription('fb:longcut');
    const rec = record(sub);
    c.connect();
    await subscribed(sub);
    await srv.publish('fb:longcut', { n: 1 });
    await waitFor('short polling', () => c.transport === 'shortpoll' && c.state === 'connected');
    await srv.publish('fb:longcut', { n: 2 });
    await sub.publish({ n: 3 });
    await waitFor('3 publications', () => rec.pubs.length >= 3);
    expect(rec.ns).toEqual([1, 2, 3]);
    expect(transports.map((t) => `${t.transport}:${t.reason}`)).toEqual(['longpoll:initial', 'shortpoll:fallback']);

    // Upgrade probes try a long poll, which the proxy still cuts: the
    // client stays on short polling, connected throughout.
    const states: string[] = [];
    c.on('state', (e) => states.push(e.newState));
    // Every session after the first (long polling's, then short polling's)
    // resumed with nothing lost.
    expect(rec.subscribed.length).toBeGreaterThan(1);
    expect(rec.subscribed.slice(1).every((e) => e.recovered)).toBe(true);
    const subscribedBefore = rec.subscribed.length;
    const cutBefore = proxy.cut;
    await waitFor('two failed upgrade probes', () => proxy.cut >= cutBefore + 2);
    expect(c.transport).toBe('shortpoll');
    expect(states).toEqual([]);

    proxy.cutting = false;
    await waitFor('the upgrade to long polling', () => c.transport === 'longpoll' && c.state === 'connected' && sub.state === 'subscribed');
    await srv.publish('fb:longcut', { n: 4 });
    await sub.publish({ n: 5 });
    await waitFor('5 publications', () => rec.pubs.length >= 5);
    expect(rec.ns).toEqual([1, 2, 3, 4, 5]);
    expect(transports.map((t) => `${t.transport}:${t.reason}`)).toEqual(['longpoll:initial', 'shortpoll:fallback', 'longpoll:upgrade']);
    // Seamless: no reconnecting state, no new subscribed event.
    expect(states).toEqual([]);
    expect(rec.subscribed).toHaveLength(subscribedBefore);
  });

  it('upgrades from long polling to SSE once a probe stream gets through, losing and repeating nothing', async () => {
    const state = { blocked: true, opened: 0 };
    const c = newClient(srv.url, ['sse', 'longpoll'], {
      EventSource: switchableEventSource(state),
      upgradeInterval: 200,
    });
    const transports: TransportEvent[] = [];
    c.on('transport', (e) => transports.push(e));
    const sub = c.newSubscription('fb:sseup');
    const rec = record(sub);
    c.connect();
    await subscribed(sub);
    expect(c.transport).toBe('longpoll');
    for (const n of seq(5)) await sub.publish({ n });
    await waitFor('5 publications', () => rec.pubs.length >= 5);
    const probesBefore = state.opened;
    state.blocked = false;
    await waitFor('the upgrade', () => c.transport === 'sse' && c.state === 'connected' && sub.state === 'subscribed');
    // One stream for the probe, one for the session.
    expect(state.opened - probesBefore).toBeGreaterThanOrEqual(2);
    for (const n of seq(5, 6)) await srv.publish('fb:sseup', { n });
    await sub.publish({ n: 11 });
    await waitFor('11 publications', () => rec.pubs.length >= 11);
    expect(rec.ns).toEqual(seq(11));
    expect(transports.map((t) => `${t.transport}:${t.reason}`)).toEqual(['longpoll:initial', 'sse:upgrade']);
    expect(rec.subscribed).toHaveLength(1);
  });

  it('switches transports on demand while publications flow, in order and once', async () => {
    const c = newClient(srv.url, ['websocket', 'sse', 'longpoll', 'shortpoll']);
    const transports: TransportEvent[] = [];
    c.on('transport', (e) => transports.push(e));
    const sub = c.newSubscription('fb:forced');
    const rec = record(sub);
    c.connect();
    await subscribed(sub);
    expect(c.transport).toBe('websocket');
    let n = 0;
    for (const t of ['sse', 'longpoll', 'shortpoll', 'websocket'] as const) {
      for (let i = 0; i < 5; i++) await srv.publish('fb:forced', { n: ++n });
      c.setTransport(t);
      expect(c.forcedTransport).toBe(t);
      await waitFor(`connected on ${t}`, () => c.transport === t && c.state === 'connected' && sub.state === 'subscribed');
      for (let i = 0; i < 5; i++) await srv.publish('fb:forced', { n: ++n });
      await waitFor(`${n} publications`, () => rec.pubs.length >= n);
    }
    expect(rec.ns).toEqual(seq(n));
    expect(transports.map((t) => `${t.transport}:${t.reason}`)).toEqual([
      'websocket:initial',
      'sse:forced',
      'longpoll:forced',
      'shortpoll:forced',
      'websocket:forced',
    ]);
    c.setTransport(null);
    expect(c.forcedTransport).toBeNull();
  });

  it('uses the EventSource and WebSocket given, not globals', () => {
    const c = newClient(srv.url, ['websocket', 'sse', 'longpoll', 'shortpoll'], { WebSocket: null, EventSource: null });
    expect(c.transports).toEqual(['longpoll', 'shortpoll']);
    const d = newClient(srv.url, ['websocket', 'sse'], { EventSource });
    expect(d.transports).toEqual(['websocket', 'sse']);
  });
});

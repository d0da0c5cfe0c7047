// A subscription's own events (state, subscribing, error, subscribed,
// unsubscribed) as the WebSocket transport drives them, against a scripted
// server: a temporary subscribe failure, a resubscribe the server asks for,
// a refusal, and a lost connection.
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from '../../src/client.js';
import { HeraldError } from '../../src/errors.js';
import type { Subscription } from '../../src/subscription.js';
import type { WebSocketConstructor } from '../../src/types.js';
import { waitFor } from '../helpers/wait.js';

interface Command {
  id: number;
  method: string;
  params: Record<string, unknown>;
}

/** Answers a command; null sends nothing. */
type Script = (ws: ScriptedWebSocket, cmd: Command) => Record<string, unknown> | null;

/** A WebSocket whose server is a script: every command is answered by it, pushes are sent by the test. */
class ScriptedWebSocket {
  static script: Script = () => null;
  static all: ScriptedWebSocket[] = [];
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly commands: Command[] = [];

  constructor(readonly url: string) {
    ScriptedWebSocket.all.push(this);
    queueMicrotask(() => {
      this.readyState = 1;
      this.onopen?.({});
    });
  }

  send(data: string): void {
    for (const line of data.split('\n')) {
      const cmd = JSON.parse(line) as Command;
      this.commands.push(cmd);
      const reply = ScriptedWebSocket.script(this, cmd);
      if (reply) queueMicrotask(() => this.push({ id: cmd.id, ...reply }));
    }
  }

  close(): void {
    this.readyState = 3;
  }

  push(frame: Record<string, unknown>): void {
    if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The server closes the connection. */
  serverClose(code: number, reason: string): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  subscribes(): Command[] {
    return this.commands.filter((c) => c.method === 'subscribe');
  }
}

/** A subscribe reply: from the position asked for when one was sent, else from offset 5. */
function subscribeOK(cmd: Command): Record<string, unknown> {
  const resuming = typeof cmd.params['epoch'] === 'string';
  return { result: { epoch: 'e1', offset: resuming ? cmd.params['offset'] : 5, recoverable: true, was_recovering: resuming, recovered: resuming } };
}

const clients: Client[] = [];

afterEach(() => {
  for (const c of clients) c.disconnect();
  clients.length = 0;
  ScriptedWebSocket.all = [];
  ScriptedWebSocket.script = () => null;
});

function client(): Client {
  const c = new Client({
    url: 'http://herald.test',
    transports: ['websocket'],
    WebSocket: ScriptedWebSocket as unknown as WebSocketConstructor,
    network: null,
    minReconnectDelay: 5,
    maxReconnectDelay: 20,
    upgradeInterval: 0,
  });
  clients.push(c);
  return c;
}

/** Every event of sub, in order, as [name, payload]. */
function events(sub: Subscription): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (const name of ['state', 'subscribing', 'subscribed', 'unsubscribed', 'error', 'publication'] as const) {
    sub.on(name, (e: unknown) => out.push([name, e]));
  }
  return out;
}

describe('subscription events', () => {
  it('a temporary subscribe failure reports error, and the subscribe on the next connection reports subscribed', async () => {
    let refused = 0;
    ScriptedWebSocket.script = (_ws, cmd) => {
      if (cmd.method === 'connect') return { result: { client: 'c1' } };
      if (cmd.method === 'subscribe' && refused++ === 0) return { error: { code: 108, message: 'not available' } };
      return subscribeOK(cmd);
    };
    const c = client();
    const sub = c.newSubscription('chat:a');
    const ev = events(sub);
    sub.subscribe();
    c.connect();
    await waitFor('subscribed', () => sub.state === 'subscribed');

    // The failed connection was dropped and a new one subscribed.
    expect(ScriptedWebSocket.all).toHaveLength(2);
    expect(ev.map(([n]) => n)).toEqual(['state', 'subscribing', 'error', 'state', 'subscribed']);
    expect(ev[0]![1]).toEqual({ newState: 'subscribing', oldState: 'unsubscribed' });
    expect(ev[1]![1]).toEqual({ channel: 'chat:a', reason: 'subscribe called' });
    const err = ev[2]![1] as { channel: string; error: Error };
    expect(err.channel).toBe('chat:a');
    expect(err.error).toBeInstanceOf(HeraldError);
    expect((err.error as HeraldError).code).toBe(108);
    expect(ev[3]![1]).toEqual({ newState: 'subscribed', oldState: 'subscribing' });
    expect(ev[4]![1]).toEqual({
      channel: 'chat:a',
      position: { epoch: 'e1', offset: 5 },
      recoverable: true,
      wasRecovering: false,
      recovered: false,
    });
  });

  it('a resubscribe the server asks for reports error, subscribing with its code, then subscribed resuming from the last publication', async () => {
    ScriptedWebSocket.script = (_ws, cmd) => {
      if (cmd.method === 'connect') return { result: { client: 'c1' } };
      if (cmd.method === 'subscribe') return subscribeOK(cmd);
      return null;
    };
    const c = client();
    const sub = c.newSubscription('chat:b');
    sub.subscribe();
    c.connect();
    await waitFor('subscribed', () => sub.state === 'subscribed');
    const ws = ScriptedWebSocket.all[0]!;
    ws.push({ type: 'publication', channel: 'chat:b', offset: 6, data: { n: 6 } });

    const ev = events(sub);
    ws.push({ type: 'unsubscribe', channel: 'chat:b', code: 108, reason: 'channel moving' });
    await waitFor('subscribed again', () => sub.state === 'subscribed' && ev.length >= 5);

    expect(ev.map(([n]) => n)).toEqual(['error', 'state', 'subscribing', 'state', 'subscribed']);
    const err = ev[0]![1] as { channel: string; error: HeraldError };
    expect(err.channel).toBe('chat:b');
    expect([err.error.code, err.error.message]).toEqual([108, 'channel moving (code 108)']);
    expect(ev[1]![1]).toEqual({ newState: 'subscribing', oldState: 'subscribed' });
    expect(ev[2]![1]).toEqual({ channel: 'chat:b', reason: 'channel moving (code 108)', code: 108 });
    expect(ev[3]![1]).toEqual({ newState: 'subscribed', oldState: 'subscribing' });
    expect(ev[4]![1]).toEqual({
      channel: 'chat:b',
      position: { epoch: 'e1', offset: 6 },
      recoverable: true,
      wasRecovering: true,
      recovered: true,
    });
    // On the same connection, from right after the publication delivered.
    expect(ScriptedWebSocket.all).toHaveLength(1);
    expect(ws.subscribes().map((s) => s.params)).toEqual([{ channel: 'chat:b' }, { channel: 'chat:b', epoch: 'e1', offset: 6, recover: true }]);
    expect(c.state).toBe('connected');
  });

  it('a refusal ends the subscription: state unsubscribed and the server\'s code, with no resubscribe', async () => {
    ScriptedWebSocket.script = (_ws, cmd) => {
      if (cmd.method === 'connect') return { result: { client: 'c1' } };
      if (cmd.method === 'subscribe') return subscribeOK(cmd);
      return null;
    };
    const c = client();
    const sub = c.newSubscription('chat:c');
    sub.subscribe();
    c.connect();
    await sub.ready(5_000);
    const ev = events(sub);
    ScriptedWebSocket.all[0]!.push({ type: 'unsubscribe', channel: 'chat:c', code: 103, reason: 'permission denied' });

    expect(ev.map(([n]) => n)).toEqual(['state', 'unsubscribed']);
    expect(ev[0]![1]).toEqual({ newState: 'unsubscribed', oldState: 'subscribed' });
    const u = ev[1]![1] as { channel: string; code: number; reason: string; error: HeraldError };
    expect([u.channel, u.code, u.reason, u.error.code]).toEqual(['chat:c', 103, 'permission denied (code 103)', 103]);
    await expect(sub.ready(100)).rejects.toThrow(/not subscribing/);
    expect(ScriptedWebSocket.all[0]!.subscribes()).toHaveLength(1);
  });

  it('a lost connection reports subscribing with the close code, then subscribed with recovered set', async () => {
    ScriptedWebSocket.script = (_ws, cmd) => {
      if (cmd.method === 'connect') return { result: { client: 'c1' } };
      if (cmd.method === 'subscribe') return subscribeOK(cmd);
      return null;
    };
    const c = client();
    const sub = c.newSubscription('chat:d');
    sub.subscribe();
    c.connect();
    await sub.ready(5_000);
    const ev = events(sub);
    ScriptedWebSocket.all[0]!.serverClose(4001, 'slow consumer');
    await waitFor('subscribed again', () => sub.state === 'subscribed' && ev.length >= 4);

    expect(ev.map(([n]) => n)).toEqual(['state', 'subscribing', 'state', 'subscribed']);
    expect(ev[1]![1]).toEqual({ channel: 'chat:d', reason: 'slow consumer', code: 4001 });
    expect(ev[3]![1]).toMatchObject({ wasRecovering: true, recovered: true, position: { epoch: 'e1', offset: 5 } });
    expect(ScriptedWebSocket.all).toHaveLength(2);
    expect(ScriptedWebSocket.all[1]!.subscribes()[0]!.params).toEqual({ channel: 'chat:d', epoch: 'e1', offset: 5, recover: true });
  });
});

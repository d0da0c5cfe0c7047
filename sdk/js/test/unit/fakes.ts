// Fake transports and a fake network for unit tests of the client's state
// machine: no server, no sockets, fake timers.
import type { TransportImpl } from '../../src/client.js';
import type { CommandMethod, EndReason, Transport, TransportHost } from '../../src/transport.js';
import type { NetworkMonitor, TransportName } from '../../src/types.js';

/** What a fake session does when opened. */
export type Behavior = 'ok' | 'fail' | 'hang';

export class FakeTransport implements Transport {
  closed = false;
  connected = false;
  constructor(
    readonly host: TransportHost,
    readonly name: TransportName,
    private readonly net: FakeNet,
  ) {}

  open(): void {
    this.net.opened.push(this.name);
    this.net.sessions.push(this);
    const b = this.net.behavior[this.name];
    queueMicrotask(() => {
      if (this.closed) return;
      if (b === 'ok') {
        this.connected = true;
        this.host.connected(this, {});
        this.update();
      } else if (b === 'fail') {
        this.closed = true;
        this.host.ended(this, { reason: `${this.name} blocked`, transportFailure: true });
      }
    });
  }

  close(): void {
    this.closed = true;
  }

  /** Confirms every wanted subscription, resuming from its position. */
  update(): void {
    if (!this.connected || this.closed) return;
    for (const s of this.host.wanted()) {
      if (s.confirmedOn === this) continue;
      this.host.confirm(this, s.channel, s.gen, {
        position: s.position ?? { epoch: 'e', offset: 0 },
        recoverable: true,
        wasRecovering: s.position !== null,
        recovered: s.position !== null,
      });
    }
  }

  unsubscribe(): void {}

  call(method: CommandMethod, params: Record<string, unknown>): Promise<unknown> {
    this.net.calls.push({ method, params, via: this.name });
    return this.net.answer(method, params);
  }

  /** The connection breaks. */
  drop(r: EndReason = { reason: 'dropped' }): void {
    this.closed = true;
    this.host.ended(this, r);
  }
}

/** A set of fake transports whose behavior tests change as they go. */
export class FakeNet {
  behavior: Record<TransportName, Behavior> = { websocket: 'ok', sse: 'ok', longpoll: 'ok', shortpoll: 'ok' };
  probe: Record<TransportName, boolean> = { websocket: true, sse: true, longpoll: true, shortpoll: true };
  probes: TransportName[] = [];
  opened: TransportName[] = [];
  sessions: FakeTransport[] = [];
  /** Every command the sessions ran. */
  calls: Array<{ method: CommandMethod; params: Record<string, unknown>; via: TransportName }> = [];
  /** Answers the sessions' commands; tests replace it. */
  answer: (method: CommandMethod, params: Record<string, unknown>) => Promise<unknown> = () => Promise.resolve({});

  impls(): Record<TransportName, TransportImpl> {
    const impl = (name: TransportName): TransportImpl => ({
      create: (host) => new FakeTransport(host, name, this),
      probe: async () => {
        this.probes.push(name);
        return this.probe[name];
      },
    });
    return { websocket: impl('websocket'), sse: impl('sse'), longpoll: impl('longpoll'), shortpoll: impl('shortpoll') };
  }

  /** The newest session. */
  get last(): FakeTransport {
    return this.sessions[this.sessions.length - 1]!;
  }
}

/** A network monitor whose online state tests switch. */
export class FakeNetwork implements NetworkMonitor {
  onLine = true;
  private readonly listeners = { online: new Set<() => void>(), offline: new Set<() => void>() };
  addEventListener(type: 'online' | 'offline', l: () => void): void {
    this.listeners[type].add(l);
  }
  removeEventListener(type: 'online' | 'offline', l: () => void): void {
    this.listeners[type].delete(l);
  }
  set(online: boolean): void {
    this.onLine = online;
    for (const l of this.listeners[online ? 'online' : 'offline']) l();
  }
  get listening(): number {
    return this.listeners.online.size + this.listeners.offline.size;
  }
}

import { vi } from 'vitest';

/**
 * Advances fake time by ms, then lets every zero-delay timer and microtask
 * that follows run (the client moves to the next transport on a zero-delay
 * timer).
 */
export async function tick(ms = 0): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
  for (let i = 0; i < 20; i++) await vi.advanceTimersByTimeAsync(0);
}

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Client } from '../../src/client.js';
import type { SubscribedEvent } from '../../src/types.js';
import { FakeNet, type FakeTransport, tick } from './fakes.js';

let net: FakeNet;

beforeEach(() => {
  vi.useFakeTimers();
  net = new FakeNet();
});
afterEach(() => {
  vi.useRealTimers();
});

async function connected(since?: { epoch: string; offset: number }) {
  const c = new Client({ url: 'http://herald.test', transportImpls: net.impls(), network: null, upgradeInterval: 0 });
  const sub = c.newSubscription('chat:a', since ? { since } : {});
  const offsets: number[] = [];
  const subscribed: SubscribedEvent[] = [];
  sub.on('publication', (p) => offsets.push(p.offset));
  sub.on('subscribed', (e) => subscribed.push(e));
  sub.subscribe();
  c.connect();
  await tick();
  return { c, sub, offsets, subscribed, t: net.last as FakeTransport };
}

const pub = (offset: number) => ({ channel: 'chat:a', offset, data: { offset }, time: 1 });

describe('delivery', () => {
  it('delivers each offset once, in order, and reports a gap', async () => {
    const { sub, offsets, t } = await connected({ epoch: 'e', offset: 5 });
    expect(sub.position).toEqual({ epoch: 'e', offset: 5 });
    expect(t.host.publication(t, pub(5))).toBe('ok'); // already seen
    expect(t.host.publication(t, pub(6))).toBe('ok');
    expect(t.host.publication(t, pub(6))).toBe('ok'); // repeated
    expect(t.host.publication(t, pub(0))).toBe('ok'); // ephemeral: always delivered
    expect(t.host.publication(t, pub(8))).toBe('gap');
    expect(offsets).toEqual([6, 0]);
    expect(sub.position).toEqual({ epoch: 'e', offset: 6 });
  });

  it('ignores a session that is not the current one', async () => {
    const { c, offsets, t } = await connected({ epoch: 'e', offset: 0 });
    c.setTransport('sse');
    await tick();
    expect(t.host.publication(t, pub(1))).toBe('ok');
    expect(offsets).toEqual([]);
    const now = net.last;
    now.host.publication(now, pub(1));
    expect(offsets).toEqual([1]);
  });

  it('reports no recovery for a fresh subscription, and none twice for a continuous one', async () => {
    const { sub, subscribed, t } = await connected();
    expect(subscribed).toEqual([{ channel: 'chat:a', position: { epoch: 'e', offset: 0 }, recoverable: true, wasRecovering: false, recovered: false }]);
    // A confirmation that recovered everything (a stream reopened) is silent.
    t.host.confirm(t, 'chat:a', 1, { position: { epoch: 'e', offset: 0 }, recoverable: true, wasRecovering: true, recovered: true });
    expect(subscribed).toHaveLength(1);
    // One that did not is not.
    t.host.confirm(t, 'chat:a', 1, { position: { epoch: 'f', offset: 9 }, recoverable: true, wasRecovering: true, recovered: false });
    expect(subscribed).toHaveLength(2);
    expect(subscribed[1]).toMatchObject({ wasRecovering: true, recovered: false });
    expect(sub.position).toEqual({ epoch: 'f', offset: 9 });
  });

  it('drops answers meant for an earlier subscribe', async () => {
    const { sub, subscribed, t } = await connected();
    sub.unsubscribe();
    sub.subscribe();
    await tick();
    const before = subscribed.length;
    t.host.confirm(t, 'chat:a', 1, { position: null, recoverable: false, wasRecovering: false, recovered: false });
    expect(subscribed).toHaveLength(before);
  });
});

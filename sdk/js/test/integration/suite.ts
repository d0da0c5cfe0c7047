// The scenarios every transport must pass against the real server. Each
// transport's test file runs them on its own servers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DisconnectError } from '../../src/errors.js';
import type { TransportName } from '../../src/types.js';
import { newClient, record, seq, subscribed } from '../helpers/client.js';
import { HeraldServer } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';

export function transportSuite(transport: TransportName): void {
  const polling = transport === 'longpoll' || transport === 'shortpoll';

  describe(`${transport} against the real server`, () => {
    let srv: HeraldServer;
    beforeAll(async () => {
      srv = await HeraldServer.start();
    });
    afterAll(async () => {
      await srv?.close();
    });

    it('connects on the transport asked for', async () => {
      const c = newClient(srv.url, transport);
      const sub = c.newSubscription('chat:connect');
      c.connect();
      await subscribed(sub);
      await c.ready(5000);
      expect(c.state).toBe('connected');
      expect(c.transport).toBe(transport);
    });

    it('receives server API publications in order, each once', async () => {
      const c = newClient(srv.url, transport);
      const sub = c.newSubscription('chat:order');
      const rec = record(sub);
      c.connect();
      await subscribed(sub);
      expect(rec.subscribed).toHaveLength(1);
      expect(rec.subscribed[0]).toMatchObject({ channel: 'chat:order', wasRecovering: false, recovered: false, recoverable: true });
      let last = { offset: 0, epoch: '' };
      for (const n of seq(30)) last = await srv.publish('chat:order', { n });
      await waitFor('30 publications', () => rec.pubs.length >= 30);
      expect(rec.ns).toEqual(seq(30));
      expect(rec.pubs.map((p) => p.offset)).toEqual(seq(30));
      expect(rec.pubs.every((p) => p.epoch === last.epoch && p.channel === 'chat:order' && p.time > 0)).toBe(true);
      expect(sub.position).toEqual({ epoch: last.epoch, offset: 30 });
    });

    it('publishes as a client, reads history and presence', async () => {
      const c = newClient(srv.url, transport);
      const sub = c.newSubscription('chat:pub');
      const rec = record(sub);
      c.connect();
      await subscribed(sub);
      const r1 = await sub.publish({ n: 1 });
      const r2 = await c.publish('chat:pub', { n: 2 }, { idempotencyKey: `k2-${transport}`, tags: { kind: 'test' } });
      // A retry with the same key stores nothing new.
      const r2again = await c.publish('chat:pub', { n: 2 }, { idempotencyKey: `k2-${transport}` });
      expect(r1.offset).toBe(1);
      expect(r2).toEqual({ epoch: r1.epoch, offset: 2 });
      expect(r2again).toEqual(r2);
      await waitFor('2 publications', () => rec.pubs.length >= 2);
      expect(rec.ns).toEqual([1, 2]);
      expect(rec.pubs[1]!.tags).toEqual({ kind: 'test' });

      const h = await sub.history();
      expect(h.publications.map((p) => (p.data as { n: number }).n)).toEqual([1, 2]);
      expect(h).toMatchObject({ epoch: r1.epoch, offset: 2 });
      const page = await c.history('chat:pub', { since: { epoch: r1.epoch, offset: 1 }, limit: 10 });
      expect(page.publications.map((p) => p.offset)).toEqual([2]);
      expect(page.publications[0]!.epoch).toBe(r1.epoch);

      const stats = await sub.presenceStats();
      const presence = await sub.presence();
      if (polling) {
        // Polls hold no session, so they are never present.
        expect(stats.numClients).toBe(0);
      } else {
        expect(stats.numClients).toBe(1);
        expect(Object.keys(presence.clients)).toHaveLength(1);
      }
    });

    it(polling ? 'never receives ephemeral publications (polling reads history)' : 'receives ephemeral publications live', async () => {
      const c = newClient(srv.url, transport);
      const sub = c.newSubscription('chat:eph');
      const rec = record(sub);
      c.connect();
      await subscribed(sub);
      const e = await sub.publish({ n: 100 }, { ephemeral: true });
      expect(e.offset).toBe(0);
      await c.publish('chat:eph', { n: 1 });
      await waitFor('the stored publication', () => rec.ns.includes(1));
      if (polling) {
        expect(rec.ns).toEqual([1]);
      } else {
        expect(rec.ns).toEqual([100, 1]);
        expect(rec.pubs[0]!.offset).toBe(0);
        expect(rec.pubs[0]!.epoch).toBeUndefined();
      }
    });

    it('reports recovered=false for a stale position, then goes on live', async () => {
      await srv.publish('chat:stale', { n: 0 });
      const c = newClient(srv.url, transport);
      const sub = c.newSubscription('chat:stale', { since: { epoch: 'gone', offset: 5 } });
      const rec = record(sub);
      c.connect();
      await subscribed(sub);
      expect(rec.subscribed).toHaveLength(1);
      expect(rec.subscribed[0]).toMatchObject({ wasRecovering: true, recovered: false });
      await srv.publish('chat:stale', { n: 1 });
      await waitFor('the live publication', () => rec.pubs.length >= 1);
      expect(rec.ns).toEqual([1]);
    });

    it('resumes from a saved position with recovered=true', async () => {
      const first = await srv.publish('chat:since', { n: 1 });
      await srv.publish('chat:since', { n: 2 });
      await srv.publish('chat:since', { n: 3 });
      const c = newClient(srv.url, transport);
      const sub = c.newSubscription('chat:since', { since: { epoch: first.epoch, offset: 1 } });
      const rec = record(sub);
      c.connect();
      await subscribed(sub);
      await waitFor('the missed publications', () => rec.pubs.length >= 2);
      expect(rec.subscribed[0]).toMatchObject({ wasRecovering: true, recovered: true });
      expect(rec.ns).toEqual([2, 3]);
    });

    it('unsubscribes and resubscribes, resuming from where it stopped', async () => {
      const c = newClient(srv.url, transport);
      const sub = c.newSubscription('chat:unsub');
      const rec = record(sub);
      const unsubscribed: number[] = [];
      sub.on('unsubscribed', (e) => unsubscribed.push(e.code));
      c.connect();
      await subscribed(sub);
      await srv.publish('chat:unsub', { n: 1 });
      await waitFor('publication 1', () => rec.pubs.length >= 1);
      sub.unsubscribe();
      expect(sub.state).toBe('unsubscribed');
      expect(unsubscribed).toEqual([0]);
      await srv.publish('chat:unsub', { n: 2 });
      await srv.publish('chat:unsub', { n: 3 });
      await subscribed(sub);
      await waitFor('publications 2 and 3', () => rec.pubs.length >= 3);
      expect(rec.ns).toEqual([1, 2, 3]);
      expect(rec.subscribed.at(-1)).toMatchObject({ wasRecovering: true, recovered: true });
    });

    it('ends a subscription the server refuses, and keeps the others', async () => {
      const c = newClient(srv.url, transport);
      const good = c.newSubscription('chat:good');
      const goodRec = record(good);
      c.connect();
      await subscribed(good);
      // A user-limited channel: only alice may subscribe, and this client is anonymous.
      const denied = c.newSubscription('chat:room#alice');
      const ended: Array<{ code: number; error?: Error }> = [];
      denied.on('unsubscribed', (e) => ended.push({ code: e.code, error: e.error }));
      denied.subscribe();
      await expect(denied.ready(5000)).rejects.toThrow(/permission/i);
      expect(denied.state).toBe('unsubscribed');
      expect(ended).toHaveLength(1);
      expect(ended[0]!.code).toBe(103);
      expect(() => c.newSubscription('bad channel')).toThrow(/invalid channel/);
      await srv.publish('chat:good', { n: 1 });
      await waitFor('the publication', () => goodRec.pubs.length >= 1);
      expect(good.state).toBe('subscribed');
      expect(goodRec.subscribed).toHaveLength(1);
    });

    // Polling carries publications only.
    if (!polling) {
      it('receives join and leave events of other clients', async () => {
        const a = newClient(srv.url, transport);
        const subA = a.newSubscription('chat:presence');
        const events: string[] = [];
        subA.on('join', (e) => events.push(`join ${e.info.client}`));
        subA.on('leave', (e) => events.push(`leave ${e.info.client}`));
        a.connect();
        await subscribed(subA);
        const before = Object.keys((await subA.presence()).clients);
        expect(before).toHaveLength(1);
        const b = newClient(srv.url, transport);
        const subB = b.newSubscription('chat:presence');
        b.connect();
        await subscribed(subB);
        const both = Object.keys((await subA.presence()).clients);
        const idB = both.find((id) => !before.includes(id))!;
        expect(idB).toBeDefined();
        await waitFor('the join of b', () => events.includes(`join ${idB}`));
        subB.unsubscribe();
        await waitFor('the leave of b', () => events.includes(`leave ${idB}`));
      });
    }

    // Close codes: 4000-4499 reconnect and resume, 4500+ stop.
    if (!polling) {
      it('reconnects and resumes after close code 4005, stops after 4504', async () => {
        const c = newClient(srv.url, transport);
        const sub = c.newSubscription(`chat:codes-${transport}`);
        const rec = record(sub);
        const connecting: Array<number | undefined> = [];
        c.on('connecting', (e) => connecting.push(e.code));
        c.connect();
        await subscribed(sub);
        const id = () => sub.presence().then((p) => Object.keys(p.clients)[0]!);
        await srv.publish(sub.channel, { n: 1 });
        await srv.api('disconnect', { client: await id(), reconnect: true });
        await srv.publish(sub.channel, { n: 2 });
        await waitFor('the resume', () => rec.subscribed.length >= 2 && rec.pubs.length >= 2);
        expect(connecting).toContain(4005);
        expect(rec.subscribed[1]).toMatchObject({ wasRecovering: true, recovered: true });
        expect(rec.ns).toEqual([1, 2]);

        const disconnected: Array<{ code?: number; error?: Error }> = [];
        c.on('disconnected', (e) => disconnected.push({ code: e.code, error: e.error }));
        await srv.api('disconnect', { client: await id() });
        await waitFor('disconnected', () => c.state === 'disconnected');
        expect(disconnected).toHaveLength(1);
        expect(disconnected[0]!.code).toBe(4504);
        expect(disconnected[0]!.error).toBeInstanceOf(DisconnectError);
        expect(sub.state).toBe('subscribing'); // still wanted: connect() makes it again
        c.connect();
        await waitFor('subscribed again', () => sub.state === 'subscribed');
      });
    }

    it('carries many channels at once', async () => {
      const c = newClient(srv.url, transport);
      const channels = ['multi:c', 'multi:a', 'multi:b'];
      const recs = channels.map((ch) => record(c.newSubscription(ch)));
      c.connect();
      for (const ch of channels) c.getSubscription(ch)!.subscribe();
      await waitFor('3 subscriptions', () => channels.every((ch) => c.getSubscription(ch)!.state === 'subscribed'));
      for (const n of seq(5)) for (const ch of channels) await srv.publish(ch, { n });
      await waitFor('5 publications on each', () => recs.every((r) => r.pubs.length >= 5));
      for (const r of recs) expect(r.ns).toEqual(seq(5));
    });
  });

  describe(`${transport}: resume across server restarts`, () => {
    it('loses nothing and repeats nothing when the durable server restarts mid-stream', async () => {
      const srv = await HeraldServer.start({ engine: 'durable' });
      try {
        const c = newClient(srv.url, transport);
        const sub = c.newSubscription('chat:resume');
        const rec = record(sub);
        c.connect();
        await subscribed(sub);
        const total = 60;
        let published = 0;
        let stop = false;
        // A steady publisher that retries through restarts with the same
        // idempotency key, as a backend would.
        const publisher = (async () => {
          for (let n = 1; n <= total && !stop; n++) {
            for (;;) {
              try {
                await srv.publish('chat:resume', { n }, `resume-${transport}-${n}`);
                published = n;
                break;
              } catch {
                await new Promise((r) => setTimeout(r, 20));
              }
            }
          }
        })();
        for (const [at, signal] of [
          [15, 'SIGTERM'],
          [35, 'SIGKILL'],
        ] as const) {
          await waitFor(`${at} publications received`, () => rec.pubs.length >= at, 20_000);
          await srv.restart(signal);
        }
        await publisher;
        expect(published).toBe(total);
        await waitFor(`all ${total} publications`, () => rec.pubs.length >= total, 20_000);
        expect(rec.ns).toEqual(seq(total));
        expect(rec.pubs.map((p) => p.offset)).toEqual(seq(total));
        // Every resume after the first subscribe recovered everything. A
        // stream or WebSocket resumes once per restart; polls resume only
        // when a restart broke a poll in flight.
        if (polling) expect(rec.subscribed.length).toBeGreaterThanOrEqual(1);
        else expect(rec.subscribed).toHaveLength(3);
        for (const e of rec.subscribed.slice(1)) expect(e).toMatchObject({ wasRecovering: true, recovered: true });
        stop = true;
      } finally {
        await srv.close();
      }
    });

    it('reports recovered=false when the server comes back with an empty store', async () => {
      const srv = await HeraldServer.start({ engine: 'memory' });
      try {
        const c = newClient(srv.url, transport);
        const sub = c.newSubscription('chat:wiped');
        const rec = record(sub);
        c.connect();
        await subscribed(sub);
        await srv.publish('chat:wiped', { n: 1 });
        await waitFor('publication 1', () => rec.pubs.length >= 1);
        await srv.restart();
        // The new epoch starts at offset 1 again.
        await waitFor('the resume', () => rec.subscribed.length >= 2, 15_000);
        expect(rec.subscribed[1]).toMatchObject({ wasRecovering: true, recovered: false });
        await srv.publish('chat:wiped', { n: 2 });
        await waitFor('publication 2', () => rec.pubs.length >= 2);
        expect(rec.ns).toEqual([1, 2]);
        expect(rec.pubs[1]!.epoch).not.toBe(rec.pubs[0]!.epoch);
      } finally {
        await srv.close();
      }
    });
  });
}

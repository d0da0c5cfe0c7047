// Tokens against the real server: connection tokens on every transport,
// refusals, refresh before expiry, and server-side subscriptions.
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldError, UnauthorizedError } from '../../src/errors.js';
import type { Publication, SubscribedEvent, TransportName } from '../../src/types.js';
import { newClient, record, seq, subscribed } from '../helpers/client.js';
import { HeraldServer } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';

const SECRET = 'sdk-js-test-secret-of-at-least-32-bytes!';

/** Mints an HS256 JWT, as `herald token` does. */
function jwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

function token(user: string, ttlSeconds = 3600, extra: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt({ sub: user, iat: now, exp: now + ttlSeconds, ...extra });
}

describe('tokens against the real server', () => {
  let srv: HeraldServer;
  beforeAll(async () => {
    srv = await HeraldServer.start({ env: { HERALD_AUTH__HMAC_SECRET: SECRET } });
  });
  afterAll(async () => {
    await srv?.close();
  });

  for (const t of ['websocket', 'sse', 'longpoll', 'shortpoll'] as TransportName[]) {
    it(`${t}: connects and subscribes with a connection token`, async () => {
      const c = newClient(srv.url, t, { token: token('alice') });
      let user: string | undefined;
      c.on('connected', (e) => (user = e.user));
      // Only alice may subscribe to this user-limited channel.
      const sub = c.newSubscription(`auth:${t}#alice`);
      const rec = record(sub);
      c.connect();
      await subscribed(sub);
      await srv.publish(`auth:${t}#alice`, { n: 1 });
      await waitFor('the publication', () => rec.pubs.length >= 1);
      if (t === 'websocket') {
        expect(user).toBe('alice');
        expect(c.clientId).toMatch(/^[a-z0-9]+$/);
      }
    });
  }

  for (const t of ['websocket', 'sse'] as TransportName[]) {
    it(`${t}: stops for good on a bad token`, async () => {
      const c = newClient(srv.url, t, { token: 'not-a-jwt' });
      const sub = c.newSubscription('auth:bad');
      const errors: Array<Error | undefined> = [];
      c.on('disconnected', (e) => errors.push(e.error));
      sub.subscribe();
      c.connect();
      await waitFor('disconnected', () => c.state === 'disconnected');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(HeraldError);
      expect((errors[0] as HeraldError).code).toBe(101);
      await expect(c.ready()).rejects.toThrow();
    });
  }

  it('stops when getToken throws UnauthorizedError', async () => {
    const c = newClient(srv.url, 'websocket', {
      getToken: () => Promise.reject(new UnauthorizedError('logged out')),
    });
    const reasons: string[] = [];
    c.on('disconnected', (e) => reasons.push(e.error?.message ?? ''));
    c.connect();
    await waitFor('disconnected', () => c.state === 'disconnected');
    expect(reasons).toEqual(['logged out']);
  });

  for (const t of ['websocket', 'sse', 'longpoll'] as TransportName[]) {
    it(`${t}: refreshes an expiring token without losing a publication`, async () => {
      let fetched = 0;
      const c = newClient(srv.url, t, {
        token: token('bob', 2),
        getToken: async () => {
          fetched++;
          return token('bob', 3600);
        },
      });
      const states: string[] = [];
      c.on('state', (e) => states.push(e.newState));
      const sub = c.newSubscription('auth:refresh');
      const rec = record(sub);
      c.connect();
      await subscribed(sub);
      let n = 0;
      // Publish until the token has been refreshed and the first token has
      // expired (its exp is whole seconds, at most 2 s from now).
      const deadline = Date.now() + 2500;
      while (Date.now() < deadline || fetched === 0) {
        await srv.publish('auth:refresh', { n: ++n });
        await waitFor(`publication ${n}`, () => rec.pubs.length >= n);
        if (Date.now() > deadline + 10_000) break;
      }
      expect(fetched).toBeGreaterThanOrEqual(1);
      expect(rec.ns).toEqual(seq(n));
      // WebSocket sends a refresh command, SSE reopens its stream from its
      // position, polling retries the poll refused as expired: none of it
      // shows as a reconnect or a resubscribe.
      expect(states).toEqual(['connecting', 'connected']);
      expect(rec.subscribed).toHaveLength(1);
    });
  }

  it('resumes server-side subscriptions after a forced reconnect', async () => {
    const c = newClient(srv.url, 'websocket', { token: token('carol', 3600, { channels: ['srv:news'] }) });
    const pubs: Publication[] = [];
    const subs: SubscribedEvent[] = [];
    c.on('publication', (p) => pubs.push(p));
    c.on('subscribed', (e) => subs.push(e));
    c.connect();
    await waitFor('the server-side subscription', () => subs.length >= 1);
    expect(subs[0]).toMatchObject({ channel: 'srv:news', recovered: false });
    for (const n of seq(3)) await srv.publish('srv:news', { n });
    await waitFor('3 publications', () => pubs.length >= 3);
    await srv.api('disconnect', { user: 'carol', reconnect: true });
    for (const n of seq(3, 4)) await srv.publish('srv:news', { n });
    await waitFor('the resume', () => subs.length >= 2);
    await waitFor('6 publications', () => pubs.length >= 6);
    expect(subs[1]).toMatchObject({ channel: 'srv:news', wasRecovering: true, recovered: true });
    expect(pubs.map((p) => (p.data as { n: number }).n)).toEqual(seq(6));
  });
});

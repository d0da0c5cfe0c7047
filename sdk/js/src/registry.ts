import { HeraldError, isTemporaryCode, isUnauthorized, UnauthorizedError } from './errors.js';
import type { StreamPosition } from './position.js';
import type { Subscription } from './subscription.js';
import type { Confirmation, DeliverResult, Transport, WantedSub } from './transport.js';
import type { ClientEvents, ClientInfo, Publication, SubscribedEvent, SubscribingEvent } from './types.js';

/** A server-side subscription: a channel the server subscribed the connection to itself. */
interface ServerSub {
  /** Right after the last publication delivered; null for channels without history. */
  position: StreamPosition | null;
  /** The session it is confirmed on. */
  session: Transport | null;
}

type EmitClient = <K extends keyof ClientEvents>(event: K, payload: ClientEvents[K]) => void;

/**
 * The subscriptions of one client and what the sessions report about them:
 * confirmations, refusals, publications (each offset delivered once, in
 * order), presence. Reports from a session other than the current one are
 * ignored.
 */
export class Registry {
  readonly subs = new Map<string, Subscription>();
  private readonly server = new Map<string, ServerSub>();
  private seq = 0;

  constructor(
    private readonly current: () => Transport | null,
    private readonly emitClient: EmitClient,
  ) {}

  /** The wanted subscriptions, as transports see them. */
  wanted(): WantedSub[] {
    const out: WantedSub[] = [];
    for (const s of this.subs.values()) {
      if (s.state === 'unsubscribed') continue;
      out.push({
        channel: s.channel,
        gen: s._gen,
        position: s._pos ? { ...s._pos } : null,
        confirmedOn: s._session,
        noHistory: s._noHistory,
        confirmedOnce: s._confirmedOnce,
        seq: s._seq,
      });
    }
    return out;
  }

  /** Makes sub wanted; returns false when it already was. */
  subscribe(sub: Subscription): boolean {
    if (sub.state !== 'unsubscribed') return false;
    sub._gen++;
    sub._seq = ++this.seq;
    sub._session = null;
    sub._confirmedOnce = false;
    sub._noHistory = false;
    sub._setState('subscribing');
    sub._emit('subscribing', { channel: sub.channel, reason: 'subscribe called' });
    return true;
  }

  /** Ends sub at the application's request; returns false when it was not wanted. */
  unsubscribe(sub: Subscription): boolean {
    if (sub.state === 'unsubscribed') return false;
    sub._gen++;
    sub._session = null;
    if (sub._getToken) sub._tokenStale = true;
    sub._setState('unsubscribed');
    sub._emit('unsubscribed', { channel: sub.channel, code: 0, reason: 'unsubscribe called' });
    return true;
  }

  /**
   * Detaches every subscription from session t, which ended. Unless keep is
   * set (a transport switch that resumes them at once), subscribed ones go
   * back to subscribing.
   */
  sessionLost(t: Transport | null, keep: boolean, code: number | undefined, reason: string): void {
    for (const s of this.subs.values()) {
      if (s.state === 'unsubscribed') continue;
      if (t === null || s._session === t) s._session = null;
      if (!keep && s.state === 'subscribed') {
        s._session = null;
        s._setState('subscribing');
        const ev: SubscribingEvent = { channel: s.channel, reason };
        if (code !== undefined) ev.code = code;
        s._emit('subscribing', ev);
      }
    }
    for (const ss of this.server.values()) ss.session = null;
  }

  private live(t: Transport, channel: string, gen: number): Subscription | null {
    const s = this.subs.get(channel);
    if (!s || t !== this.current() || s._gen !== gen || s.state === 'unsubscribed') return null;
    return s;
  }

  setStart(t: Transport, channel: string, gen: number, position: StreamPosition | null, noHistory: boolean): void {
    const s = this.live(t, channel, gen);
    if (!s) return;
    s._pos = position ? { ...position } : null;
    s._noHistory = noHistory;
  }

  dropPosition(t: Transport, channel: string, gen: number): void {
    const s = this.live(t, channel, gen);
    if (!s || !s._pos) return;
    s._pos = null;
    s._session = null;
    s._broken = !s._fresh;
  }

  confirm(t: Transport, channel: string, gen: number, c: Confirmation): void {
    const s = this.live(t, channel, gen);
    if (!s) return;
    const ev: SubscribedEvent = {
      channel,
      position: c.position ? { ...c.position } : null,
      recoverable: c.recoverable,
      wasRecovering: c.wasRecovering,
      recovered: c.recovered,
    };
    if (s._fresh) {
      // The application asked for "from now": whatever position the
      // transport used to get there is no recovery of its own.
      ev.wasRecovering = ev.recovered = false;
    }
    if (s._broken) {
      ev.wasRecovering = true;
      ev.recovered = false;
    }
    // Already subscribed with continuity intact (a stream reopened for a
    // new channel list, a transport switch): nothing to tell.
    const silent = s.state === 'subscribed' && ev.recovered;
    s._fresh = false;
    s._broken = false;
    s._confirmedOnce = true;
    s._pos = c.recoverable && c.position && c.position.epoch ? { ...c.position } : null;
    s._session = t;
    if (silent) return;
    s._setState('subscribed');
    s._emit('subscribed', ev);
  }

  refuse(t: Transport, channel: string, gen: number, err: Error): void {
    const s = this.live(t, channel, gen);
    if (!s) return;
    this.end(s, err);
  }

  /** Ends s for good because of err. */
  end(s: Subscription, err: Error): void {
    s._gen++;
    s._session = null;
    s._setState('unsubscribed', err);
    s._emit('unsubscribed', { channel: s.channel, code: err instanceof HeraldError ? err.code : 0, reason: err.message, error: err });
  }

  subscriptionError(t: Transport, channel: string, err: Error): void {
    const s = this.subs.get(channel);
    if (s && t === this.current() && s.state !== 'unsubscribed') s._emit('error', { channel, error: err });
  }

  resubscribing(t: Transport, channel: string, err: Error): void {
    const s = this.subs.get(channel);
    if (!s || t !== this.current() || s.state === 'unsubscribed') return;
    s._session = null;
    s._emit('error', { channel, error: err });
    if (s._setState('subscribing')) {
      const ev: SubscribingEvent = { channel, reason: err.message };
      if (err instanceof HeraldError) ev.code = err.code;
      s._emit('subscribing', ev);
    }
  }

  /**
   * Delivers a publication once, in order: offsets already delivered are
   * dropped, and a gap (which a correct server never sends) makes the
   * session end and resume.
   */
  publication(t: Transport, pub: Publication): DeliverResult {
    if (t !== this.current()) return 'ok';
    const s = this.subs.get(pub.channel);
    if (!s || s._session !== t || s.state !== 'subscribed') return this.serverPublication(t, pub);
    if (pub.offset > 0 && s._pos) {
      if (pub.offset <= s._pos.offset) return 'ok';
      if (pub.offset !== s._pos.offset + 1) return 'gap';
      s._pos = { epoch: s._pos.epoch, offset: pub.offset };
      pub.epoch = s._pos.epoch;
    }
    s._emit('publication', pub);
    return 'ok';
  }

  presence(t: Transport, kind: 'join' | 'leave', channel: string, info: ClientInfo): void {
    if (t !== this.current()) return;
    const s = this.subs.get(channel);
    if (s && s._session === t && s.state === 'subscribed') {
      s._emit(kind, { channel, info });
      return;
    }
    const ss = this.server.get(channel);
    if (ss && ss.session === t) this.emitClient(kind, { channel, info });
  }

  /**
   * Delivers a signal to the subscription of its room. The server sends
   * signals only to members, and may send one before the subscribe reply
   * (presence lists a member as it subscribes), so a subscription still
   * subscribing takes it too.
   */
  signal(t: Transport, channel: string, from: ClientInfo, data: unknown): void {
    if (t !== this.current()) return;
    const s = this.subs.get(channel);
    if (s && s.state !== 'unsubscribed') {
      s._emit('signal', { channel, from, data });
      return;
    }
    const ss = this.server.get(channel);
    if (ss && ss.session === t) this.emitClient('signal', { channel, from, data });
  }

  private serverPublication(t: Transport, pub: Publication): DeliverResult {
    const ss = this.server.get(pub.channel);
    if (!ss || ss.session !== t) return 'ok';
    if (pub.offset > 0 && ss.position) {
      if (pub.offset <= ss.position.offset) return 'ok';
      if (pub.offset !== ss.position.offset + 1) return 'gap';
      ss.position = { epoch: ss.position.epoch, offset: pub.offset };
      pub.epoch = ss.position.epoch;
    }
    this.emitClient('publication', pub);
    return 'ok';
  }

  /** Positions of the server-side subscriptions, sent in the connect command to resume them. */
  serverPositions(): Record<string, StreamPosition> {
    const out: Record<string, StreamPosition> = {};
    for (const [ch, ss] of this.server) if (ss.position) out[ch] = { ...ss.position };
    return out;
  }

  serverSubscribed(t: Transport, channel: string, c: Confirmation): void {
    if (t !== this.current()) return;
    let ss = this.server.get(channel);
    if (!ss) {
      ss = { position: null, session: null };
      this.server.set(channel, ss);
    }
    // As for a subscribe reply: a recovered stream continues from the
    // position sent in the connect command, else from the newest one.
    let start = c.position;
    if (start && c.recovered && ss.position) start = { epoch: start.epoch, offset: ss.position.offset };
    ss.session = t;
    ss.position = c.recoverable && start && start.epoch ? { ...start } : null;
    this.emitClient('subscribed', {
      channel,
      position: start ? { ...start } : null,
      recoverable: c.recoverable,
      wasRecovering: c.wasRecovering,
      recovered: c.recovered,
    });
  }

  /**
   * The server ended, or could not make, a server-side subscription.
   * Returns true for a temporary failure: only a new connection makes the
   * server subscribe again, so the session must end.
   */
  serverUnsubscribed(t: Transport, channel: string, code: number, reason: string): boolean {
    if (t !== this.current()) return false;
    if (isTemporaryCode(code)) return true;
    this.server.delete(channel);
    this.emitClient('unsubscribed', { channel, code, reason, error: new HeraldError(code, reason) });
    return false;
  }

  subscriptionToken(channel: string): string | undefined {
    const s = this.subs.get(channel);
    return s && s.state !== 'unsubscribed' ? s._token || undefined : undefined;
  }

  staleSubscriptionTokens(channels: readonly string[]): void {
    for (const ch of channels) {
      const s = this.subs.get(ch);
      if (s?._getToken) s._tokenStale = true;
    }
  }

  /** After a connection is lost, every subscription with a getToken fetches a fresh token. */
  staleAllSubscriptionTokens(): void {
    for (const s of this.subs.values()) if (s._getToken) s._tokenStale = true;
  }

  /**
   * Makes each wanted subscription among channels that has a getToken hold
   * a fresh token. One whose getToken throws UnauthorizedError ends; any
   * other failure is reported to the subscription and thrown, for the
   * session to end and be retried with backoff.
   */
  async subscriptionTokens(channels: readonly string[]): Promise<void> {
    for (const ch of channels) {
      const s = this.subs.get(ch);
      if (!s || !s._getToken || !s._tokenStale || s.state === 'unsubscribed') continue;
      const gen = s._gen;
      try {
        const tok = await s._getToken(ch);
        if (s._gen !== gen) continue;
        s._token = tok;
        s._tokenStale = false;
      } catch (err) {
        if (s._gen !== gen) continue;
        const e = err instanceof Error ? err : new Error(String(err));
        if (err instanceof UnauthorizedError || isUnauthorized(err)) {
          this.end(s, e);
          continue;
        }
        s._emit('error', { channel: ch, error: e });
        throw e;
      }
    }
  }
}

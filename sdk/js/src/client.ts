import { Backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { NotConnectedError, TimeoutError } from './errors.js';
import { httpCall, toPublication, type WirePublication } from './http.js';
import { resolveOptions, type ClientOptions, type Resolved } from './options.js';
import { isValidChannel, isValidEpoch } from './position.js';
import { Registry } from './registry.js';
import { Subscription, type SubscriptionOptions } from './subscription.js';
import type { CommandMethod, ConnectInfo, EndReason, Transport, TransportHost } from './transport.js';
import { tokenEnd } from './transports/shared.js';
import {
  TRANSPORTS,
  type ClientEvents,
  type ClientState,
  type ConnectedEvent,
  type HistoryOptions,
  type HistoryResult,
  type IceServer,
  type PresenceResult,
  type PresenceStatsResult,
  type PublishOptions,
  type PublishResult,
  type TransportName,
} from './types.js';
import { Waiters } from './waiters.js';

export { baseURL } from './options.js';
export type { ClientOptions, TransportImpl } from './options.js';

/** A connection that lasted this long makes the next reconnect start from the shortest delay. */
const STABLE_AFTER = 10_000;
/** Failures in a row after which a transport that worked before is skipped for the next. */
const PROVEN_FAILURES = 3;

/**
 * A connection to a Herald server and the subscriptions carried on it, kept
 * alive across network failures, server restarts and transport changes.
 */
export class Client extends Emitter<ClientEvents> {
  private _state: ClientState = 'disconnected';
  private readonly opts: Resolved;
  private readonly registry: Registry;
  private readonly host: TransportHost;
  private readonly backoff: Backoff;
  private readonly getToken: (() => Promise<string>) | undefined;

  private index = 0;
  private forced: TransportName | null = null;
  /** The transport of the current or last attempt; null while disconnected. */
  private attempting: TransportName | null = null;
  /** The transport of the last connected session. */
  private lastConnected: TransportName | null = null;
  private session: Transport | null = null;
  private sessionConnected = false;
  private sessionStart = 0;
  /**
   * A switch to another transport while connected: subscriptions stay
   * subscribed and resume at once. 'revert' when a failed upgrade goes back
   * to the transport that worked.
   */
  private switching: null | { revertTo: number | null } = null;
  private readonly failures = new Map<TransportName, number>();
  private readonly proven = new Set<TransportName>();
  private openTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private upgradeTimer: ReturnType<typeof setTimeout> | undefined;
  private waitingOnline = false;
  private attemptSeq = 0;
  private scheduleSeq = 0;
  private _clientId: string | null = null;
  private _connectData: unknown = undefined;
  private token: string;
  private tokenStale: boolean;
  private tokenFetch: Promise<string> | null = null;
  private readonly waiters = new Waiters();
  private readonly onOnline = () => this.online();
  private readonly onOffline = () => this.offline();

  constructor(options: ClientOptions = {}) {
    super();
    this.opts = resolveOptions(options);
    this.backoff = new Backoff(this.opts.minDelay, this.opts.maxDelay, options.random);
    this.getToken = options.getToken;
    this.token = options.token ?? '';
    this.tokenStale = !options.token && !!options.getToken;
    this.registry = new Registry(
      () => this.session,
      (event, payload) => this.emit(event, payload),
    );
    this.host = this.makeHost();
  }

  /** The connection state. */
  get state(): ClientState {
    return this._state;
  }

  /** The transport in use or being tried; null while disconnected. */
  get transport(): TransportName | null {
    return this._state === 'disconnected' ? null : this.attempting;
  }

  /** The transports this client may use, in order of preference. */
  get transports(): readonly TransportName[] {
    return [...this.opts.order];
  }

  /** The transport forced with setTransport, if any. */
  get forcedTransport(): TransportName | null {
    return this.forced;
  }

  /** The client id the server gave the current WebSocket connection. */
  get clientId(): string | null {
    return this._clientId;
  }

  /**
   * What the server's connect proxy backend returned for the current
   * WebSocket connection (its connect reply's `data`); undefined when it
   * returned nothing, and on the other transports.
   */
  get connectData(): unknown {
    return this._connectData;
  }

  /**
   * Starts connecting, and keeps the client connected from then on: after a
   * lost connection it reconnects with backoff and resumes every
   * subscription. Listen for `connected`, or await ready().
   */
  connect(): void {
    if (this._state !== 'disconnected') return;
    this.setState('connecting');
    this.emit('connecting', { reason: 'connect called' });
    this.opts.network?.addEventListener('online', this.onOnline);
    this.opts.network?.addEventListener('offline', this.onOffline);
    this.backoff.reset();
    this.failures.clear();
    this.index = 0;
    this.startAttempt();
  }

  /**
   * Disconnects and stops reconnecting. Subscriptions stay wanted (in
   * state subscribing) and are made again on connect().
   */
  disconnect(): void {
    if (this._state === 'disconnected') return;
    this.stop({ reason: 'disconnect called' });
  }

  /**
   * Resolves once the client is connected (at once if it is); rejects when
   * it becomes disconnected first or after timeout milliseconds.
   */
  ready(timeout?: number): Promise<void> {
    if (this._state === 'connected') return Promise.resolve();
    if (this._state === 'disconnected') return Promise.reject(new NotConnectedError());
    return this.waiters.wait(timeout, 'not connected');
  }

  /**
   * Forces a transport (fallback and upgrades stop), switching to it now if
   * connected; null goes back to choosing automatically. The transport need
   * not be in `transports`, but must be available.
   */
  setTransport(name: TransportName | null): void {
    if (name !== null && !this.opts.impls[name]) throw new Error(`herald: transport ${name} is not available`);
    this.forced = name;
    clearTimeout(this.upgradeTimer);
    if (name === null) {
      if (this.sessionConnected) this.scheduleUpgrade();
      return;
    }
    const i = this.opts.order.indexOf(name);
    if (i >= 0) this.index = i;
    if (this._state === 'disconnected' || this.attempting === name) return;
    this.switchNow(null);
  }

  /**
   * Makes a subscription to channel, unsubscribed until its subscribe(). A
   * client holds one subscription per channel: a second one throws until
   * removeSubscription removes the first.
   */
  newSubscription(channel: string, options?: SubscriptionOptions): Subscription {
    if (!isValidChannel(channel)) throw new Error(`herald: invalid channel name ${JSON.stringify(channel)}`);
    if (options?.since && (!isValidEpoch(options.since.epoch) || !Number.isSafeInteger(options.since.offset) || options.since.offset < 0)) {
      throw new Error(`herald: options.since is not a valid position`);
    }
    if (this.registry.subs.has(channel)) throw new Error(`herald: a subscription to ${channel} exists already`);
    const sub = new Subscription(this, channel, options);
    this.registry.subs.set(channel, sub);
    return sub;
  }

  /** The subscription to channel, if any. */
  getSubscription(channel: string): Subscription | null {
    return this.registry.subs.get(channel) ?? null;
  }

  /** Unsubscribes sub and forgets it, so that a new subscription to its channel can be made. */
  removeSubscription(sub: Subscription): void {
    if (this.registry.subs.get(sub.channel) !== sub) return;
    this._unsubscribe(sub);
    this.registry.subs.delete(sub.channel);
    sub._removed = true;
  }

  /** Every subscription, by channel. */
  subscriptions(): Record<string, Subscription> {
    return Object.fromEntries(this.registry.subs);
  }

  /** @internal Use Subscription.subscribe. */
  _subscribe(sub: Subscription): void {
    if (sub._removed) throw new Error(`herald: subscription to ${sub.channel} was removed`);
    if (this.registry.subscribe(sub)) this.session?.update();
  }

  /** @internal Use Subscription.unsubscribe. */
  _unsubscribe(sub: Subscription): void {
    if (!this.registry.unsubscribe(sub)) return;
    const t = this.session;
    if (t) {
      t.unsubscribe(sub.channel);
      t.update();
    }
  }

  /**
   * Publishes data (any JSON value) to channel. Resolves with where the
   * server stored it (zero-valued when ephemeral). On WebSocket it waits for
   * the connection; on the other transports it is an HTTP request.
   */
  async publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<PublishResult> {
    const params: Record<string, unknown> = { channel, data };
    if (opts.ephemeral) params['ephemeral'] = true;
    if (opts.idempotencyKey) params['idempotency_key'] = opts.idempotencyKey;
    if (opts.tags) params['tags'] = opts.tags;
    const r = (await this.command('publish', params)) as Partial<PublishResult>;
    return { epoch: r.epoch ?? '', offset: r.offset ?? 0 };
  }

  /** Reads a page of channel's history. */
  async history(channel: string, opts: HistoryOptions = {}): Promise<HistoryResult> {
    const params: Record<string, unknown> = { channel };
    if (opts.since) params['since'] = { epoch: opts.since.epoch, offset: opts.since.offset };
    if (opts.limit) params['limit'] = opts.limit;
    if (opts.reverse) params['reverse'] = true;
    const r = (await this.command('history', params)) as { publications?: WirePublication[]; epoch?: string; offset?: number };
    const epoch = r.epoch ?? '';
    return {
      publications: (r.publications ?? []).map((w) => {
        const p = toPublication(w);
        if (p.offset > 0) p.epoch = epoch;
        return p;
      }),
      epoch,
      offset: r.offset ?? 0,
    };
  }

  /** Lists the clients subscribed to channel. */
  async presence(channel: string): Promise<PresenceResult> {
    const r = (await this.command('presence', { channel })) as Partial<PresenceResult>;
    return { clients: r.clients ?? {} };
  }

  /** Counts the clients and users subscribed to channel. */
  async presenceStats(channel: string): Promise<PresenceStatsResult> {
    const r = (await this.command('presence_stats', { channel })) as { num_clients?: number; num_users?: number };
    return { numClients: r.num_clients ?? 0, numUsers: r.num_users ?? 0 };
  }

  /**
   * Calls method on the application's backend through the server's RPC
   * proxy (docs/proxy.md) with data (any JSON value, or undefined for none)
   * and resolves with the backend's data (undefined when it sent none). On
   * WebSocket it travels over the connection, waiting for it; on the other
   * transports it is an HTTP request (POST /rpc). A refusal rejects with a
   * HeraldError: the backend's own code (1000–1999), 118 when the backend
   * did not answer, 108 when the server has no RPC proxy.
   */
  async rpc(method: string, data?: unknown): Promise<unknown> {
    const params: Record<string, unknown> = { method };
    if (data !== undefined) params['data'] = data;
    const r = (await this.command('rpc', params)) as { data?: unknown };
    return r.data;
  }

  /**
   * Sends data (any JSON value) to the client `to` alone, a member of the
   * WebRTC room channel, which this client must have joined by subscribing
   * to it (docs/protocol.md, "WebRTC signaling"). The recipient gets a
   * `signal` event. A refusal rejects with a HeraldError: 117 when `to` is
   * not in the room, 110 when this client is not. Signaling needs a
   * WebSocket connection: on other transports it rejects at once.
   */
  async signal(channel: string, to: string, data: unknown): Promise<void> {
    await this.command('signal', { channel, to, data });
  }

  /**
   * The server's STUN and TURN servers, with TURN credentials made for this
   * client, for an RTCConfiguration's iceServers; an empty list when the
   * server runs none. Needs a WebSocket connection, like signal.
   */
  async iceServers(): Promise<IceServer[]> {
    const r = (await this.command('ice_servers', {})) as { ice_servers?: IceServer[] };
    return (r.ice_servers ?? []).map((s) => {
      const out: IceServer = { urls: s.urls };
      if (s.username !== undefined) out.username = s.username;
      if (s.credential !== undefined) out.credential = s.credential;
      return out;
    });
  }

  /**
   * Runs a command: over HTTP on transports that have no command channel
   * (no connection needed), else on the connection, waiting for it.
   */
  private async command(method: CommandMethod, params: Record<string, unknown>): Promise<unknown> {
    if (this._state === 'disconnected') throw new NotConnectedError();
    const deadline = Date.now() + this.opts.timeout;
    for (;;) {
      const name = this.attempting ?? this.opts.order[this.index]!;
      if (this.opts.impls[name]?.httpCommands) {
        // The server knows a client id only on a connection, so signaling
        // has no HTTP endpoint.
        if (method === 'signal' || method === 'ice_servers') throw new Error(`herald: ${method} needs a WebSocket connection; the client is on ${name}`);
        if (this.opts.fetchFn) return httpCall(this.host, this.opts.fetchFn, method, params);
      }
      if (this.session && this.sessionConnected) return this.session.call(method, params);
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError(`${method}: not connected within ${this.opts.timeout} ms`);
      await this.waitStateChange(left);
      if (this.state === ('disconnected' as ClientState)) throw new NotConnectedError();
    }
  }

  /** Woken on every state change and every session that connects. */
  private stateWaiters: Array<() => void> = [];

  private wakeWaiters(): void {
    const sw = this.stateWaiters;
    this.stateWaiters = [];
    for (const f of sw) f();
  }

  private waitStateChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.stateWaiters = self.stateWaiters.filter((f) => f !== done);
        resolve();
      }
      this.stateWaiters.push(done);
    });
  }

  private setState(next: ClientState): void {
    const prev = this._state;
    if (prev === next) return;
    this._state = next;
    this.wakeWaiters();
    this.emit('state', { newState: next, oldState: prev });
  }

  // Sessions, fallback and upgrades.

  /** Starts a session on the transport at index (or the forced one). */
  private startAttempt(): void {
    clearTimeout(this.reconnectTimer);
    this.scheduleSeq++;
    this.reconnectTimer = undefined;
    if (this._state === 'disconnected' || this.session) return;
    if (this.opts.network && !this.opts.network.onLine) {
      this.waitingOnline = true;
      return;
    }
    const seq = ++this.attemptSeq;
    const name = this.forced ?? this.opts.order[this.index]!;
    this.attempting = name;
    // The token comes first, so that a slow getToken does not count
    // against the transport.
    if (this.getToken && this.tokenStale) {
      this.connectionToken().then(
        () => {
          if (seq === this.attemptSeq && !this.session) this.openSession(name);
        },
        (err: unknown) => {
          if (seq === this.attemptSeq && !this.session) this.afterEnd(name, false, tokenEnd(err));
        },
      );
      return;
    }
    this.openSession(name);
  }

  private openSession(name: TransportName): void {
    if (this._state === 'disconnected') return;
    const t = this.opts.impls[name]!.create(this.host);
    this.session = t;
    this.sessionConnected = false;
    this.sessionStart = Date.now();
    this.openTimer = setTimeout(() => {
      if (this.session !== t || this.sessionConnected) return;
      t.close();
      this.ended(t, { reason: `${name}: not connected within ${this.opts.transportTimeout} ms`, transportFailure: true });
    }, this.opts.transportTimeout);
    t.open();
  }

  private connected(t: Transport, info: ConnectInfo): void {
    if (t !== this.session || this.sessionConnected) return;
    clearTimeout(this.openTimer);
    this.sessionConnected = true;
    this.switching = null;
    const name = t.name;
    this._clientId = info.client ?? null;
    this._connectData = info.data;
    if (this.lastConnected !== name) {
      const prev = this.lastConnected;
      let reason: 'initial' | 'fallback' | 'upgrade' | 'forced' = 'initial';
      if (this.forced === name) reason = 'forced';
      else if (prev !== null) reason = this.rank(name) > this.rank(prev) ? 'fallback' : 'upgrade';
      this.lastConnected = name;
      this.emit('transport', { transport: name, previous: prev, reason });
    }
    if (this._state !== 'connected') {
      this.setState('connected');
      const ev: ConnectedEvent = { transport: name };
      if (info.client) ev.client = info.client;
      if (info.user) ev.user = info.user;
      if (info.data !== undefined) ev.data = info.data;
      this.emit('connected', ev);
    }
    this.waiters.resolveAll();
    this.wakeWaiters();
    this.scheduleUpgrade();
  }

  private rank(name: TransportName): number {
    const i = this.opts.order.indexOf(name);
    return i < 0 ? TRANSPORTS.indexOf(name) : i;
  }

  private ended(t: Transport, r: EndReason): void {
    if (t !== this.session) return;
    const wasConnected = this.sessionConnected;
    const lasted = Date.now() - this.sessionStart;
    this.session = null;
    this.sessionConnected = false;
    clearTimeout(this.openTimer);
    clearTimeout(this.upgradeTimer);
    if (wasConnected) {
      // A reconnect never brings a stale token.
      if (this.getToken) this.tokenStale = true;
      this.registry.staleAllSubscriptionTokens();
      if (lasted >= STABLE_AFTER) this.backoff.reset();
      // A session that worked proves its transport and forgets its failures
      // in a row; one that connected without working counts instead.
      if (!r.unproven) {
        this.proven.add(t.name);
        this.failures.set(t.name, 0);
      }
    }
    this.afterEnd(t.name, wasConnected, r);
  }

  /** Decides what follows a session (or token fetch) that ended for r. */
  private afterEnd(name: TransportName, wasConnected: boolean, r: EndReason): void {
    if (r.tokenExpired && this.getToken) this.tokenStale = true;
    const permanent = r.permanent && !(r.code === 4505 && this.getToken);
    if (permanent) {
      this.stop(r);
      return;
    }
    const sw = this.switching;
    if (sw && !wasConnected && sw.revertTo !== null) {
      // An upgrade that did not work: back to the transport that did, at
      // once, with subscriptions still subscribed.
      this.emit('error', { type: 'transport', transport: name, error: r.error ?? new Error(r.reason) });
      this.index = sw.revertTo;
      this.switching = { revertTo: null };
      this.schedule(0);
      return;
    }
    this.switching = null;
    if (this._state === 'connected') {
      this.registry.sessionLost(null, false, r.code, r.reason);
      this.setState('connecting');
      const ev: { code?: number; reason: string } = { reason: r.reason };
      if (r.code !== undefined) ev.code = r.code;
      this.emit('connecting', ev);
    } else {
      this.registry.sessionLost(null, false, r.code, r.reason);
      this.emit('error', {
        type: r.tokenFailure ? 'token' : r.transportFailure ? 'transport' : 'connect',
        transport: name,
        error: r.error ?? new Error(r.reason),
      });
    }
    if (r.transportFailure && (!wasConnected || r.unproven) && !this.forced && this.opts.order.length > 1) {
      const n = (this.failures.get(name) ?? 0) + 1;
      this.failures.set(name, n);
      if (n >= (this.proven.has(name) ? PROVEN_FAILURES : 1)) {
        // Fall back to the next transport at once; after the last one,
        // wait and start over from the best.
        const next = this.opts.order.indexOf(name) + 1;
        if (next < this.opts.order.length) {
          this.index = next;
          this.schedule(0);
        } else {
          this.index = 0;
          this.failures.clear();
          this.schedule(this.backoff.next());
        }
        return;
      }
    }
    this.schedule(this.backoff.next());
  }

  /** Starts the next attempt after delay ms; 0 means as soon as the current call stack is done. */
  private schedule(delay: number): void {
    clearTimeout(this.reconnectTimer);
    const seq = ++this.scheduleSeq;
    if (delay > 0) {
      this.reconnectTimer = setTimeout(() => this.startAttempt(), delay);
      return;
    }
    // A microtask rather than a zero timer, which browsers clamp to 4 ms
    // when nested.
    void Promise.resolve().then(() => {
      if (seq === this.scheduleSeq) this.startAttempt();
    });
  }

  /** Stops for good: state disconnected. */
  private stop(r: EndReason): void {
    const t = this.session;
    this.session = null;
    this.sessionConnected = false;
    this.switching = null;
    this.attemptSeq++;
    t?.close();
    clearTimeout(this.openTimer);
    clearTimeout(this.reconnectTimer);
    this.scheduleSeq++;
    clearTimeout(this.upgradeTimer);
    this.waitingOnline = false;
    this.opts.network?.removeEventListener('online', this.onOnline);
    this.opts.network?.removeEventListener('offline', this.onOffline);
    this.registry.sessionLost(null, false, r.code, r.reason);
    if (this.getToken) this.tokenStale = true;
    this.registry.staleAllSubscriptionTokens();
    this._clientId = null;
    this._connectData = undefined;
    this.setState('disconnected');
    const ev: { code?: number; reason: string; error?: Error } = { reason: r.reason };
    if (r.code !== undefined) ev.code = r.code;
    if (r.error) ev.error = r.error;
    this.emit('disconnected', ev);
    this.waiters.rejectAll(r.error ?? new NotConnectedError(r.reason));
  }

  /**
   * Ends the current session and starts one on the transport at
   * this.index (or the forced one) at once. While connected, subscriptions
   * stay subscribed: they resume on the new session with nothing lost.
   * revertTo is the index to go back to if the new transport fails.
   */
  private switchNow(revertTo: number | null): void {
    const t = this.session;
    const wasConnected = this.sessionConnected;
    this.session = null;
    this.sessionConnected = false;
    this.attemptSeq++;
    clearTimeout(this.openTimer);
    clearTimeout(this.upgradeTimer);
    clearTimeout(this.reconnectTimer);
    this.scheduleSeq++;
    t?.close();
    if (wasConnected) {
      this.switching = { revertTo };
      this.registry.sessionLost(t, true, undefined, 'transport switch');
    } else {
      this.registry.sessionLost(t, false, undefined, 'transport switch');
    }
    if (this.waitingOnline) return;
    this.startAttempt();
  }

  private scheduleUpgrade(): void {
    clearTimeout(this.upgradeTimer);
    if (this.forced || this.opts.upgradeInterval <= 0 || !this.session) return;
    if (this.opts.order.indexOf(this.session.name) <= 0) return;
    this.upgradeTimer = setTimeout(() => {
      this.tryUpgrade().catch(() => this.scheduleUpgrade());
    }, this.opts.upgradeInterval);
  }

  /** Probes the transports better than the current one; switches to the first that works. */
  private async tryUpgrade(): Promise<void> {
    const t = this.session;
    if (!t || !this.sessionConnected) return;
    const current = this.opts.order.indexOf(t.name);
    for (let j = 0; j < current; j++) {
      const impl = this.opts.impls[this.opts.order[j]!]!;
      let ok = false;
      try {
        ok = impl.probe ? await impl.probe(this.host, this.opts.transportTimeout) : true;
      } catch {
        ok = false;
      }
      if (this.session !== t || !this.sessionConnected || this.forced) return;
      if (ok) {
        this.index = j;
        this.switchNow(current);
        return;
      }
    }
    this.scheduleUpgrade();
  }

  private offline(): void {
    if (this._state === 'disconnected' || this.waitingOnline) return;
    this.waitingOnline = true;
    const t = this.session;
    this.session = null;
    this.sessionConnected = false;
    this.switching = null;
    this.attemptSeq++;
    clearTimeout(this.openTimer);
    clearTimeout(this.reconnectTimer);
    this.scheduleSeq++;
    clearTimeout(this.upgradeTimer);
    t?.close();
    if (this.getToken && t) this.tokenStale = true;
    this.registry.sessionLost(null, false, undefined, 'offline');
    if (this._state === 'connected') {
      this.setState('connecting');
      this.emit('connecting', { reason: 'offline' });
    }
  }

  private online(): void {
    if (!this.waitingOnline) return;
    this.waitingOnline = false;
    if (this._state === 'disconnected') return;
    // The network is back: no reason to wait, nor to distrust transports.
    this.backoff.reset();
    this.failures.clear();
    this.startAttempt();
  }

  // Tokens.

  private connectionToken(): Promise<string> {
    if (!this.getToken || !this.tokenStale) return Promise.resolve(this.token);
    return this.refreshToken();
  }

  private refreshToken(): Promise<string> {
    const getToken = this.getToken;
    if (!getToken) return Promise.resolve(this.token);
    if (!this.tokenFetch) {
      this.tokenFetch = Promise.resolve()
        .then(() => getToken())
        .then(
          (tok) => {
            this.tokenFetch = null;
            this.token = tok;
            this.tokenStale = false;
            return tok;
          },
          (err: unknown) => {
            this.tokenFetch = null;
            throw err;
          },
        );
    }
    return this.tokenFetch;
  }

  private makeHost(): TransportHost {
    const reg = this.registry;
    return {
      baseURL: this.opts.base,
      options: this.opts,
      wanted: () => reg.wanted(),
      connectionToken: () => this.connectionToken(),
      refreshToken: () => this.refreshToken(),
      canRefreshToken: () => !!this.getToken,
      subscriptionTokens: (chs) => reg.subscriptionTokens(chs),
      subscriptionToken: (ch) => reg.subscriptionToken(ch),
      staleSubscriptionTokens: (chs) => reg.staleSubscriptionTokens(chs),
      serverPositions: () => reg.serverPositions(),
      connected: (t, info) => this.connected(t, info),
      ended: (t, r) => this.ended(t, r),
      setStart: (t, ch, gen, p, nh) => reg.setStart(t, ch, gen, p, nh),
      confirm: (t, ch, gen, c) => reg.confirm(t, ch, gen, c),
      refuse: (t, ch, gen, err) => reg.refuse(t, ch, gen, err),
      subscriptionError: (t, ch, err) => reg.subscriptionError(t, ch, err),
      resubscribing: (t, ch, err) => reg.resubscribing(t, ch, err),
      dropPosition: (t, ch, gen) => reg.dropPosition(t, ch, gen),
      publication: (t, pub) => reg.publication(t, pub),
      presence: (t, kind, ch, info) => reg.presence(t, kind, ch, info),
      signal: (t, ch, from, data) => reg.signal(t, ch, from, data),
      serverSubscribed: (t, ch, c) => reg.serverSubscribed(t, ch, c),
      serverUnsubscribed: (t, ch, code, reason) => reg.serverUnsubscribed(t, ch, code, reason),
      error: (t, type, err) => {
        if (t === this.session) this.emit('error', { type, transport: t.name, error: err });
      },
    };
  }
}

import { Emitter } from './emitter.js';
import type { StreamPosition } from './position.js';
import type { Transport } from './transport.js';
import type {
  HistoryOptions,
  HistoryResult,
  PresenceResult,
  PresenceStatsResult,
  PublishOptions,
  PublishResult,
  SubscriptionEvents,
  SubscriptionState,
} from './types.js';
import { Waiters } from './waiters.js';

/** Options of a subscription; every field may be left out. */
export interface SubscriptionOptions {
  /**
   * Resume the first subscribe from this position (saved earlier from
   * {@link Subscription.position}): the publications after it come first,
   * and the subscribed event says whether that was possible. Without it the
   * subscription starts from "now".
   */
  since?: StreamPosition;
  /**
   * A subscription token (a JWT naming the client's user and this channel),
   * which channels of private namespaces need.
   */
  token?: string;
  /**
   * Returns a fresh subscription token. Called for every subscribe but the
   * first (that one too without `token`): after each reconnect, after
   * unsubscribe(), and when the server refuses a stream or poll as carrying
   * an expired token. Throwing UnauthorizedError ends the subscription.
   */
  getToken?: (channel: string) => Promise<string>;
}

/** What a Subscription needs of its client: a Client. */
export interface SubscriptionOwner {
  _subscribe(sub: Subscription): void;
  _unsubscribe(sub: Subscription): void;
  publish(channel: string, data: unknown, opts?: PublishOptions): Promise<PublishResult>;
  history(channel: string, opts?: HistoryOptions): Promise<HistoryResult>;
  presence(channel: string): Promise<PresenceResult>;
  presenceStats(channel: string): Promise<PresenceStatsResult>;
  signal(channel: string, to: string, data: unknown): Promise<void>;
}

/**
 * A client's interest in one channel. Make it with
 * {@link Client.newSubscription} and start it with subscribe(). Once
 * subscribed it stays subscribed across reconnects and transport changes:
 * the client resumes it from the last publication it delivered, and the
 * `subscribed` event reports whether that recovered everything missed.
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  /** The channel. */
  readonly channel: string;
  private _state: SubscriptionState = 'unsubscribed';
  private readonly owner: SubscriptionOwner;
  private readonly waiters = new Waiters();

  // Session state, kept by the client. Marked internal: not part of the API.
  /** @internal Moves on at every subscribe and unsubscribe. */
  _gen = 0;
  /** @internal Orders subscriptions by their last subscribe(). */
  _seq = 0;
  /** @internal Right after the last publication delivered; null for none. */
  _pos: StreamPosition | null = null;
  /** @internal No position was asked for: the first confirmation is no recovery. */
  _fresh: boolean;
  /** @internal The server refused the position: the next confirmation reports a broken continuity. */
  _broken = false;
  /** @internal The session the subscription is confirmed on. */
  _session: Transport | null = null;
  /** @internal */
  _confirmedOnce = false;
  /** @internal */
  _noHistory = false;
  /** @internal */
  _token: string | undefined;
  /** @internal */
  _tokenStale: boolean;
  /** @internal */
  _removed = false;
  /** @internal */
  readonly _getToken: ((channel: string) => Promise<string>) | undefined;

  /** Use {@link Client.newSubscription} rather than this constructor. */
  constructor(owner: SubscriptionOwner, channel: string, opts: SubscriptionOptions = {}) {
    super();
    this.owner = owner;
    this.channel = channel;
    this._fresh = !opts.since;
    if (opts.since) this._pos = { epoch: opts.since.epoch, offset: opts.since.offset };
    this._token = opts.token;
    this._getToken = opts.getToken;
    this._tokenStale = !opts.token;
  }

  /** The subscription's state. */
  get state(): SubscriptionState {
    return this._state;
  }

  /**
   * The position of the last publication delivered, or where the stream
   * started if none followed yet: save it to resume later with `since`.
   * Null before the first confirmation, and for channels without history.
   */
  get position(): StreamPosition | null {
    return this._pos ? { epoch: this._pos.epoch, offset: this._pos.offset } : null;
  }

  /**
   * Makes the subscription wanted: it is subscribed now if the client is
   * connected, when it connects otherwise, and again after every reconnect.
   * Wait for the `subscribed` event, or for ready().
   */
  subscribe(): void {
    this.owner._subscribe(this);
  }

  /**
   * Ends the subscription (an `unsubscribed` event follows at once). It
   * keeps its position: a later subscribe() resumes from it.
   */
  unsubscribe(): void {
    this.owner._unsubscribe(this);
  }

  /** Publishes data to the channel (see {@link Client.publish}). */
  publish(data: unknown, opts?: PublishOptions): Promise<PublishResult> {
    return this.owner.publish(this.channel, data, opts);
  }

  /** Reads the channel's history (see {@link Client.history}). */
  history(opts?: HistoryOptions): Promise<HistoryResult> {
    return this.owner.history(this.channel, opts);
  }

  /** Lists the clients subscribed to the channel. */
  presence(): Promise<PresenceResult> {
    return this.owner.presence(this.channel);
  }

  /** Counts the clients and users subscribed to the channel. */
  presenceStats(): Promise<PresenceStatsResult> {
    return this.owner.presenceStats(this.channel);
  }

  /** Sends data to one other member of the channel's WebRTC room (see {@link Client.signal}). */
  signal(to: string, data: unknown): Promise<void> {
    return this.owner.signal(this.channel, to, data);
  }

  /**
   * Resolves once the subscription is subscribed (at once if it is), and
   * rejects when it becomes unsubscribed first (with the server's refusal,
   * if that was why) or after timeout milliseconds.
   */
  ready(timeout?: number): Promise<void> {
    if (this._state === 'subscribed') return Promise.resolve();
    if (this._state === 'unsubscribed') return Promise.reject(new Error(`${this.channel}: not subscribing`));
    return this.waiters.wait(timeout, `${this.channel}: not subscribed`);
  }

  /** @internal Changes the state and emits `state`; returns whether it changed. */
  _setState(next: SubscriptionState, err?: Error): boolean {
    const prev = this._state;
    if (prev === next) return false;
    this._state = next;
    if (next === 'subscribed') this.waiters.resolveAll();
    if (next === 'unsubscribed') this.waiters.rejectAll(err ?? new Error(`${this.channel}: unsubscribed`));
    this.emit('state', { newState: next, oldState: prev });
    return true;
  }

  /** @internal */
  _emit<K extends keyof SubscriptionEvents>(event: K, payload: SubscriptionEvents[K]): void {
    this.emit(event, payload);
  }
}

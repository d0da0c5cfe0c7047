import type { StreamPosition } from './position.js';
import type { ClientInfo, Publication, TransportName } from './types.js';

/**
 * Why a session ended. `permanent`: reconnecting would fail the same way,
 * so the client stops. `transportFailure`: the transport itself did not work
 * (no answer, handshake refused, timeout), which may make the client fall
 * back to the next transport; a server that answered with an error is no
 * reason to change transports. Once a session connected, its failures are
 * the network's and do not count against the transport, unless `unproven`
 * says the session never showed the transport works (long polling whose
 * long polls never got an answer: the first poll answers at once).
 */
export interface EndReason {
  reason: string;
  code?: number;
  error?: Error;
  permanent?: boolean;
  transportFailure?: boolean;
  /** The session connected without showing its transport works. */
  unproven?: boolean;
  /** The connection token was refused as expired: fetch a fresh one. */
  tokenExpired?: boolean;
  /** getToken failed. */
  tokenFailure?: boolean;
}

/** A subscription as a transport sees it. */
export interface WantedSub {
  readonly channel: string;
  /** Moves on at every subscribe and unsubscribe: stale answers carry an older one. */
  readonly gen: number;
  /** Where to resume from: right after the last publication delivered; null for none. */
  readonly position: StreamPosition | null;
  /** The subscription is confirmed on this transport session. */
  readonly confirmedOn: Transport | null;
  /** A probe found the channel keeps no history (SSE). */
  readonly noHistory: boolean;
  /** The server accepted it at least once since subscribe(). */
  readonly confirmedOnce: boolean;
  /** Orders subscriptions by their last subscribe() call. */
  readonly seq: number;
}

/** What a server reported about a subscription it confirmed. */
export interface Confirmation {
  position: StreamPosition | null;
  recoverable: boolean;
  wasRecovering: boolean;
  recovered: boolean;
}

/** The result of delivering one publication. */
export type DeliverResult = 'ok' | 'gap';

/**
 * A session's view of its client. Every callback names the session it comes
 * from; the client ignores those of a session that is no longer current.
 */
export interface TransportHost {
  /** The server's base URL, http(s), without trailing slash. */
  readonly baseURL: string;
  readonly options: ResolvedTransportOptions;
  /** The subscriptions that are wanted (subscribing or subscribed), in no order. */
  wanted(): WantedSub[];
  /** The connection token to use, fetched from getToken when stale. */
  connectionToken(): Promise<string>;
  /** A fresh connection token from getToken (after a refresh request or an expiry). */
  refreshToken(): Promise<string>;
  /** Whether a fresh connection token can be had (getToken is set). */
  canRefreshToken(): boolean;
  /** Makes every wanted subscription with a getToken hold a fresh-enough token. */
  subscriptionTokens(channels: readonly string[]): Promise<void>;
  /** The subscription token a subscription holds, if any. */
  subscriptionToken(channel: string): string | undefined;
  /** Makes the next subscriptionTokens call fetch fresh tokens for these. */
  staleSubscriptionTokens(channels: readonly string[]): void;
  /** Positions of the server-side subscriptions, for the connect command. */
  serverPositions(): Record<string, StreamPosition>;

  connected(t: Transport, info: ConnectInfo): void;
  ended(t: Transport, r: EndReason): void;
  /** Records a position for a subscription not yet confirmed (a probe's "now"). */
  setStart(t: Transport, channel: string, gen: number, position: StreamPosition | null, noHistory: boolean): void;
  confirm(t: Transport, channel: string, gen: number, c: Confirmation): void;
  /** The server refused a subscription for good. */
  refuse(t: Transport, channel: string, gen: number, err: Error): void;
  /** A temporary failure of a subscription. */
  subscriptionError(t: Transport, channel: string, err: Error): void;
  /** The server ended a subscription for a temporary reason; it is subscribed again. */
  resubscribing(t: Transport, channel: string, err: Error): void;
  /** Forgets a position that the server refused as malformed. */
  dropPosition(t: Transport, channel: string, gen: number): void;
  publication(t: Transport, pub: Publication): DeliverResult;
  presence(t: Transport, kind: 'join' | 'leave', channel: string, info: ClientInfo): void;
  signal(t: Transport, channel: string, from: ClientInfo, data: unknown): void;
  serverSubscribed(t: Transport, channel: string, c: Confirmation): void;
  /** The server ended or could not make a server-side subscription; returns whether the session must end. */
  serverUnsubscribed(t: Transport, channel: string, code: number, reason: string): boolean;
  /** Reports a problem that does not end the session. */
  error(t: Transport, type: 'refresh' | 'subscription' | 'transport', err: Error): void;
}

/** What a session learned of itself from the server when it connected (WebSocket only). */
export interface ConnectInfo {
  client?: string;
  user?: string;
  /** The connect proxy backend's data. */
  data?: unknown;
}

/** Options the transports read, with defaults applied. */
export interface ResolvedTransportOptions {
  readonly name?: string;
  /** The connect command's data: a JSON value. */
  readonly data?: unknown;
  readonly headers: Readonly<Record<string, string>>;
  readonly withCredentials: boolean;
  readonly timeout: number;
  readonly pollTimeout: number;
  readonly pollInterval: number;
}

/**
 * One session of one transport: it holds a connection (or a poll loop)
 * until it breaks or the client closes it, keeping every wanted subscription
 * subscribed on it. A Transport is used for one session only.
 */
export interface Transport {
  readonly name: TransportName;
  /** Starts the session; it reports through its host. */
  open(): void;
  /** Ends the session without reporting it: the client is done with it. */
  close(): void;
  /** The set of wanted subscriptions changed. */
  update(): void;
  /** Tells the server a subscription confirmed on this session is no longer wanted. */
  unsubscribe(channel: string): void;
  /** Runs a command (publish, history, presence, presence_stats, rpc, and on WebSocket signal, ice_servers). */
  call(method: CommandMethod, params: Record<string, unknown>): Promise<unknown>;
}

export type CommandMethod = 'publish' | 'history' | 'presence' | 'presence_stats' | 'rpc' | 'signal' | 'ice_servers';

/** Makes a transport session for a host. */
export type TransportFactory = (host: TransportHost) => Transport;
